using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using StackExchange.Redis;

namespace Realtime.Testing;

/// <summary>
/// A real <c>redis-server</c> process on a free loopback port, without persistence: killing it
/// loses every key.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(10);
    private readonly string _executable;
    private readonly string _directory;
    private readonly int _clusterBusPort;
    private ManagedProcess? _process;

    private RedisServer(string executable, int port, bool cluster)
    {
        _executable = executable;
        Port = port;
        IsCluster = cluster;

        // Redis would otherwise take port + 10,000 for the cluster bus: above 65,535 for a fifth
        // of the ephemeral range, and not known to be free anywhere.
        _clusterBusPort = cluster ? FreePort.Next() : 0;
        _directory = Path.Combine(Path.GetTempPath(), $"realtime-redis-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{port.ToString(CultureInfo.InvariantCulture)}");
    }

    /// <summary>
    /// Whether the server runs in cluster mode, as the one node of a Redis Cluster that owns all
    /// 16,384 slots: commands and scripts whose keys hash to different slots fail with
    /// <c>CROSSSLOT</c> there, as they would on any Redis Cluster.
    /// </summary>
    public bool IsCluster { get; }

    /// <summary>
    /// Whether <see cref="StartAsync(CancellationToken)"/> starts servers in cluster mode: set
    /// <c>REALTIME_TEST_REDIS_CLUSTER=1</c> to run a whole test suite against a Redis Cluster node.
    /// </summary>
    public static bool ClusterByDefault => Environment.GetEnvironmentVariable("REALTIME_TEST_REDIS_CLUSTER") == "1";

    /// <summary>The TCP port on 127.0.0.1 the server listens on (the same across restarts).</summary>
    public int Port { get; }

    /// <summary>StackExchange.Redis configuration string: <c>127.0.0.1:&lt;port&gt;,abortConnect=false</c>.</summary>
    public string ConnectionString => $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)},abortConnect=false";

    /// <summary>The running <c>redis-server</c> process (a new one after each start).</summary>
    public ManagedProcess Process => _process ?? throw new InvalidOperationException("redis-server is not started.");

    /// <summary>Whether a <c>redis-server</c> process started here is running.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>
    /// Starts <c>redis-server</c> on a free loopback port, standalone unless <see cref="ClusterByDefault"/>
    /// says otherwise, and waits (at most 10 s) until it answers PING.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>redis-server</c> is not installed, or did not start.</exception>
    public static Task<RedisServer> StartAsync(CancellationToken cancellationToken = default) =>
        StartAsync(ClusterByDefault, cancellationToken);

    /// <summary>
    /// Starts <c>redis-server</c> on a free loopback port, standalone or as a one-node Redis Cluster
    /// (<see cref="IsCluster"/>), and waits (at most 10 s) until it answers PING and, as a cluster
    /// node, until the cluster's state is ok.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>redis-server</c> is not installed, or did not start.</exception>
    public static async Task<RedisServer> StartAsync(bool cluster, CancellationToken cancellationToken = default)
    {
        var executable = FindExecutable();
        const int Attempts = 3;
        for (var attempt = 1; ; attempt++)
        {
            var server = new RedisServer(executable, FreePort.Next(), cluster);
            try
            {
                await server.StartProcessAsync(cancellationToken);
                return server;
            }
            catch (InvalidOperationException) when (attempt < Attempts && server.PortWasTaken())
            {
                // Another process took the port between FreePort and redis-server's bind: try a new one.
                await server.DisposeAsync();
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>SIGKILL: the server dies at once and every key is lost. Returns once it exited.</summary>
    public async Task KillAsync()
    {
        if (_process is { } process)
        {
            process.Kill();
            await process.WaitForExitAsync(ExitTimeout);
        }
    }

    /// <summary>Starts a new, empty server on the same port after <see cref="KillAsync"/>, and waits until it answers PING.</summary>
    /// <exception cref="InvalidOperationException">The server is still running, or did not start.</exception>
    public async Task StartAgainAsync()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"redis-server on port {Port} is still running; kill it first (or use RestartAsync).");
        }

        if (_process is not null)
        {
            await _process.DisposeAsync();
            _process = null;
        }

        await StartProcessAsync(CancellationToken.None);
    }

    /// <summary>Kill (data lost) and start again, empty, on the same port.</summary>
    public async Task RestartAsync()
    {
        await KillAsync();
        await StartAgainAsync();
    }

    /// <summary>Kills the server and removes its (empty) working directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.DisposeAsync();
            _process = null;
        }

        try
        {
            if (Directory.Exists(_directory))
            {
                Directory.Delete(_directory, recursive: true);
            }
        }
        catch (IOException)
        {
            // Best effort: it lives under the temp directory.
        }
        catch (UnauthorizedAccessException)
        {
            // Best effort.
        }
    }

    /// <summary>Sends PING over a plain TCP connection and returns whether <c>+PONG</c> came back within <paramref name="timeout"/>.</summary>
    public async Task<bool> PingAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, Port), cts.Token);
            await socket.SendAsync("PING\r\n"u8.ToArray(), SocketFlags.None, cts.Token);
            var buffer = new byte[64];
            var read = 0;
            while (read < 7)
            {
                var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }

            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        // redis-server writes nothing here (no RDB, no AOF), but it needs a directory of its own.
        var directory = _directory;
        Directory.CreateDirectory(directory);
        _process = ManagedProcess.Start(new ProcessSpec
        {
            Name = $"redis-{Port.ToString(CultureInfo.InvariantCulture)}",
            FileName = _executable,
            Arguments =
            [
                "--port", Port.ToString(CultureInfo.InvariantCulture),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "yes",
                "--daemonize", "no",
                "--dir", directory,
                .. (IsCluster ? ClusterArguments(_clusterBusPort) : []),
            ],
            WorkingDirectory = directory,
        });

        // Signal first (the server says it is ready), then proof: a PING round trip.
        var clock = Stopwatch.StartNew();
        await _process.WaitForLineAsync(l => l.Contains("Ready to accept connections", StringComparison.Ordinal), ReadyTimeout, cancellationToken);
        while (!await PingAsync(TimeSpan.FromSeconds(1)))
        {
            if (_process.HasExited || clock.Elapsed > ReadyTimeout)
            {
                throw new InvalidOperationException($"redis-server on port {Port} does not answer PING ({_process}, exited: {_process.HasExited}); see {_process.LogPath}.");
            }

            await Task.Delay(50, cancellationToken);
        }

        if (IsCluster)
        {
            await TakeAllSlotsAsync(clock, cancellationToken);
        }
    }

    private static string[] ClusterArguments(int busPort) =>
        ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", busPort.ToString(CultureInfo.InvariantCulture)];

    // A restarted node reads its slots back from nodes.conf; a new one is given all of them.
    private async Task TakeAllSlotsAsync(Stopwatch clock, CancellationToken cancellationToken)
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(ConnectionString + ",allowAdmin=true");
        var server = admin.GetServer(IPAddress.Loopback, Port);
        if (!ClusterInfo(await server.ExecuteAsync("CLUSTER", "INFO")).Contains("cluster_slots_assigned:16384", StringComparison.Ordinal))
        {
            await server.ExecuteAsync("CLUSTER", "ADDSLOTSRANGE", 0, 16383);
        }

        while (!ClusterInfo(await server.ExecuteAsync("CLUSTER", "INFO")).Contains("cluster_state:ok", StringComparison.Ordinal))
        {
            if (clock.Elapsed > ReadyTimeout)
            {
                throw new InvalidOperationException($"redis-server on port {Port} did not report cluster_state:ok; see {Process.LogPath}.");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private static string ClusterInfo(RedisResult info) => info.ToString() ?? string.Empty;

    private bool PortWasTaken() =>
        _process is { } process && process.RecentLines.Any(l => l.Contains("Address already in use", StringComparison.OrdinalIgnoreCase));

    private static string FindExecutable()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Append("/usr/bin").Append("/usr/local/bin"))
        {
            var candidate = Path.Combine(dir, "redis-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException(
            "redis-server was not found on PATH or in /usr/bin. Install it: apt-get install -y redis-server " +
            "(./realtime.sh test does that for you).");
    }
}
