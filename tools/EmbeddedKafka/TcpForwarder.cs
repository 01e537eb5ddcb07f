using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Realtime.EmbeddedKafka;

/// <summary>
/// Accepts TCP connections on a fixed loopback endpoint and relays each, in both directions, to
/// the endpoint a function returns at that moment. This is how the mock brokers, which bind random
/// ports, are reached at fixed addresses.
/// </summary>
/// <remarks>
/// Both sockets of a relayed connection have <c>TCP_NODELAY</c>; when either side closes (or
/// fails) the other is closed too. A connection whose target cannot be reached is closed at once.
/// Buffers are pooled and only held while data is in flight, so idle connections cost no buffer
/// memory.
/// </remarks>
public sealed class TcpForwarder : IAsyncDisposable
{
    private const int BufferSize = 64 * 1024;
    private const int Backlog = 512;
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    private readonly Func<EndPoint> _target;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Relay, byte> _relays = new();
    private readonly Lock _gate = new();
    private readonly List<Task> _acceptLoops = [];

    // The listening socket; while paused, a socket bound to the same endpoint but not listening
    // (so connection attempts are refused and the port stays reserved), or null if rebinding failed.
    private Socket? _listener;
    private bool _paused;
    private bool _disposed;

    private TcpForwarder(Socket listener, Func<EndPoint> target)
    {
        _listener = listener;
        _target = target;
        LocalEndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _acceptLoops.Add(Task.Run(() => AcceptLoopAsync(listener)));
    }

    /// <summary>The endpoint listened on (the actual port when started with port 0).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>
    /// Starts listening on <paramref name="listen"/> (a loopback address; port 0 picks a free port)
    /// and forwarding every accepted connection to <paramref name="target"/>(), evaluated per connection.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="listen"/> is not a loopback address.</exception>
    /// <exception cref="SocketException">The endpoint cannot be bound (e.g. the port is in use).</exception>
    public static TcpForwarder Start(IPEndPoint listen, Func<EndPoint> target)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(target);
        if (!IPAddress.IsLoopback(listen.Address))
        {
            throw new ArgumentException($"The embedded broker only listens on loopback addresses, not {listen.Address}.", nameof(listen));
        }

        var listener = Bind(listen);
        try
        {
            listener.Listen(Backlog);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        return new TcpForwarder(listener, target);
    }

    /// <summary>Stops listening, closes every forwarded connection and waits for their relays to end. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        Task[] loops;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _listener?.Dispose();
            _listener = null;
            loops = [.. _acceptLoops];
        }

        await _stopping.CancelAsync();
        await Task.WhenAll(loops);
        var relays = _relays.Keys.ToArray();
        foreach (var relay in relays)
        {
            relay.Close();
        }

        await Task.WhenAll(relays.Select(r => r.Completion));
        _stopping.Dispose();
    }

    /// <summary>
    /// Makes the endpoint refuse connections, as a broker that is down does, and closes every
    /// forwarded connection. The port stays bound. Used by <see cref="EmbeddedKafkaHost"/> when a
    /// broker is set down.
    /// </summary>
    internal void Pause()
    {
        lock (_gate)
        {
            if (_disposed || _paused)
            {
                return;
            }

            _paused = true;
            // Closing the listener ends its accept loop; then hold the port without listening.
            _listener?.Dispose();
            try
            {
                _listener = Bind(LocalEndPoint);
            }
            catch (SocketException)
            {
                _listener = null;
            }
        }

        foreach (var relay in _relays.Keys)
        {
            relay.Close();
        }
    }

    /// <summary>Accepts and forwards connections again after <see cref="Pause"/>.</summary>
    /// <exception cref="SocketException">The endpoint could not be listened on again.</exception>
    internal void Resume()
    {
        lock (_gate)
        {
            if (_disposed || !_paused)
            {
                return;
            }

            var listener = _listener ?? Bind(LocalEndPoint);
            try
            {
                listener.Listen(Backlog);
            }
            catch
            {
                listener.Dispose();
                _listener = null;
                throw;
            }

            _listener = listener;
            _paused = false;
            _acceptLoops.RemoveAll(t => t.IsCompleted);
            _acceptLoops.Add(Task.Run(() => AcceptLoopAsync(listener)));
        }
    }

    private static Socket Bind(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (OperatingSystem.IsLinux())
            {
                // SO_REUSEADDR alone lets a restarted host rebind while old connections linger in
                // TIME_WAIT, and Linux still refuses a second listener on the port. (.NET's
                // SocketOptionName.ReuseAddress also sets SO_REUSEPORT, which would let two hosts
                // share the port: not wanted.)
                socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            }

            socket.Bind(endpoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                lock (_gate)
                {
                    if (token.IsCancellationRequested || !ReferenceEquals(listener, _listener) || _paused)
                    {
                        // Disposed or paused: this listener is gone.
                        return;
                    }
                }

                // Transient (e.g. out of file descriptors, connection reset before accept): keep serving.
                try
                {
                    await Task.Delay(50, token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            var relay = new Relay(client);
            _relays[relay] = 0;
            relay.Completion = RunRelayAsync(relay, token);
        }
    }

    private async Task RunRelayAsync(Relay relay, CancellationToken stopping)
    {
        // Let the accept loop go on at once.
        await Task.Yield();
        try
        {
            relay.Client.NoDelay = true;
            var target = _target();
            var upstream = target is IPEndPoint ip
                ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
                : new Socket(SocketType.Stream, ProtocolType.Tcp);
            if (!relay.SetUpstream(upstream))
            {
                return;
            }

            upstream.NoDelay = true;
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(stopping))
            {
                connect.CancelAfter(ConnectTimeout);
                await upstream.ConnectAsync(target, connect.Token);
            }

            // Whichever direction ends first closes both sockets, which ends the other.
            await Task.WhenAll(CopyAsync(relay.Client, upstream, relay), CopyAsync(upstream, relay.Client, relay));
        }
#pragma warning disable CA1031 // A relay is fire-and-forget: any failure just ends the connection.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
        finally
        {
            relay.Close();
            _relays.TryRemove(relay, out _);
        }
    }

    private static async Task CopyAsync(Socket from, Socket to, Relay relay)
    {
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                // Wait for data without holding a buffer (idle Kafka connections are the norm).
                await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);
                buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                var read = await from.ReceiveAsync(buffer.AsMemory(), SocketFlags.None);
                if (read == 0)
                {
                    return;
                }

                var sent = 0;
                while (sent < read)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None);
                }

                ArrayPool<byte>.Shared.Return(buffer);
                buffer = null;
            }
        }
#pragma warning disable CA1031 // Reset, closed or disposed sockets all mean: this connection is over.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            relay.Close();
        }
    }

    /// <summary>One forwarded connection: the accepted client socket and the socket to the target.</summary>
    private sealed class Relay(Socket client)
    {
        private readonly Lock _gate = new();
        private Socket? _upstream;
        private bool _closed;

        public Socket Client { get; } = client;

        public Task Completion { get; set; } = Task.CompletedTask;

        /// <summary>Attaches the socket to the target; false (and disposes it) if already closed.</summary>
        public bool SetUpstream(Socket upstream)
        {
            lock (_gate)
            {
                if (!_closed)
                {
                    _upstream = upstream;
                    return true;
                }
            }

            upstream.Dispose();
            return false;
        }

        public void Close()
        {
            Socket? upstream;
            lock (_gate)
            {
                if (_closed)
                {
                    return;
                }

                _closed = true;
                upstream = _upstream;
            }

            CloseSocket(Client);
            if (upstream is not null)
            {
                CloseSocket(upstream);
            }
        }

        private static void CloseSocket(Socket socket)
        {
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }

            socket.Dispose();
        }
    }
}
