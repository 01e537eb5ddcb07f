using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Realtime.Testing;

/// <summary>
/// A child process a test started: its output captured line by line (to a log file and a
/// bounded in-memory ring), with bounded waits for lines, for HTTP readiness and for exit, and
/// kill / graceful terminate.
/// </summary>
/// <remarks>
/// <para>
/// Output of both streams goes to <c>&lt;repo&gt;/TestResults/logs/&lt;name&gt;-&lt;pid&gt;.log</c>
/// (<see cref="LogPath"/>), each line prefixed with the time and the stream, and the last
/// <see cref="RecentLineCapacity"/> lines are kept in memory (<see cref="RecentLines"/>).
/// </para>
/// <para>
/// No orphans: <see cref="DisposeAsync"/> kills a process that is still running, and an
/// <see cref="AppDomain.ProcessExit"/> handler kills every process this test process started
/// that is still running when it exits. Kills are by process id only: the process itself and
/// the processes it started (found through <c>/proc</c>), never anything by name or group.
/// </para>
/// </remarks>
public sealed partial class ManagedProcess : IAsyncDisposable
{
    /// <summary>How many recent output lines are kept in memory.</summary>
    public const int RecentLineCapacity = 2000;

    /// <summary>How many lines of output an error message quotes.</summary>
    public const int QuotedLines = 50;

    private const int SigKill = 9;
    private const int SigTerm = 15;
    private static readonly TimeSpan KillWait = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan DrainWait = TimeSpan.FromSeconds(2);
    private static readonly ConcurrentDictionary<ManagedProcess, byte> Running = new();
    private static readonly HttpClient Http = new(new SocketsHttpHandler
    {
        UseProxy = false,
        PooledConnectionLifetime = TimeSpan.FromSeconds(1),
        ConnectTimeout = TimeSpan.FromSeconds(2),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private readonly Process _process;
    private readonly Lock _gate = new();
    private readonly Queue<string> _recent = new();
    private readonly List<LineWaiter> _waiters = [];
    private readonly Task<int> _exit;
    private readonly Task _output;
    private StreamWriter? _log;
    private bool _outputEnded;
    private int _disposed;

    static ManagedProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAllRunning();
    }

    private ManagedProcess(ProcessSpec spec, Process process)
    {
        Spec = spec;
        _process = process;
        Pid = process.Id;
        Name = spec.Name;
        LogPath = Path.Combine(LogDirectory(), $"{Sanitize(spec.Name)}-{Pid.ToString(CultureInfo.InvariantCulture)}.log");
        _log = new StreamWriter(LogPath, append: false, new UTF8Encoding(false)) { AutoFlush = true };
        _log.WriteLine($"# {spec.FileName} {string.Join(' ', spec.Arguments)}");
        _log.WriteLine($"# pid {Pid}, started {DateTimeOffset.Now:O}, working directory {spec.WorkingDirectory ?? Environment.CurrentDirectory}");
        Running.TryAdd(this, 0);
        _exit = WatchExitAsync();
        _output = PumpOutputAsync();
    }

    /// <summary>What was started.</summary>
    public ProcessSpec Spec { get; }

    /// <summary>The <see cref="ProcessSpec.Name"/> of the process.</summary>
    public string Name { get; }

    /// <summary>Process id.</summary>
    public int Pid { get; }

    /// <summary>Full path of the log file holding all of the process's output.</summary>
    public string LogPath { get; }

    /// <summary>Whether the process has exited.</summary>
    public bool HasExited => _exit.IsCompleted || ProcessHasExited();

    /// <summary>The exit code once the process exited (128 + signal number when a signal ended it), else null.</summary>
    public int? ExitCode => _exit.IsCompletedSuccessfully ? _exit.Result : ProcessHasExited() ? SafeExitCode() : null;

    /// <summary>A snapshot of the last <see cref="RecentLineCapacity"/> lines of output (stdout and stderr, in arrival order).</summary>
    public IReadOnlyList<string> RecentLines
    {
        get
        {
            lock (_gate)
            {
                return [.. _recent];
            }
        }
    }

    /// <summary>Starts a process.</summary>
    /// <exception cref="InvalidOperationException">The executable could not be started.</exception>
    public static ManagedProcess Start(ProcessSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var info = new ProcessStartInfo(spec.FileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            // The child gets a pipe that stays open and empty, never the test process's stdin.
            RedirectStandardInput = true,
            CreateNoWindow = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = spec.WorkingDirectory ?? string.Empty,
        };
        foreach (var argument in spec.Arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in spec.Environment)
        {
            if (value is null)
            {
                info.Environment.Remove(name);
            }
            else
            {
                info.Environment[name] = value;
            }
        }

        var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            process.Dispose();
            throw new InvalidOperationException($"Could not start {spec.Name}: '{spec.FileName}' ({e.Message}).", e);
        }

        try
        {
            return new ManagedProcess(spec, process);
        }
        catch
        {
            KillTree(process.Id, process);
            process.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Completes when a line matching <paramref name="predicate"/> was printed: one already in
    /// <see cref="RecentLines"/>, or one that arrives within <paramref name="timeout"/>.
    /// </summary>
    /// <exception cref="TimeoutException">No such line within the timeout; the message quotes the last lines and says whether the process exited.</exception>
    /// <exception cref="InvalidOperationException">The process closed its output (it exited) without printing such a line.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task WaitForLineAsync(Func<string, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        LineWaiter waiter;
        lock (_gate)
        {
            foreach (var line in _recent)
            {
                if (predicate(line))
                {
                    return;
                }
            }

            if (_outputEnded)
            {
                throw new InvalidOperationException($"{Describe()} ended its output without printing a matching line.{Quote()}");
            }

            waiter = new LineWaiter(predicate);
            _waiters.Add(waiter);
        }

        try
        {
            await waiter.Matched.Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            Forget(waiter);
            throw new TimeoutException($"{Describe()} printed no matching line within {Seconds(timeout)}.{Quote()}");
        }
        catch (OperationCanceledException)
        {
            Forget(waiter);
            throw;
        }
    }

    /// <summary>
    /// Polls <paramref name="url"/> with GET (short backoff, each attempt bounded) until it answers
    /// with a 2xx status, for at most <paramref name="timeout"/>.
    /// </summary>
    /// <exception cref="TimeoutException">No 2xx answer within the timeout.</exception>
    /// <exception cref="InvalidOperationException">The process exited before a 2xx answer.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task WaitForHttpOkAsync(Uri url, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(url);
        var clock = Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(50);
        var last = "no attempt";
        var attempts = 0;
        while (clock.Elapsed < timeout)
        {
            attempts++;
            var remaining = timeout - clock.Elapsed;
            using (var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                attempt.CancelAfter(remaining < TimeSpan.FromSeconds(5) ? remaining : TimeSpan.FromSeconds(5));
                try
                {
                    using var response = await Http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, attempt.Token);
                    if (response.IsSuccessStatusCode)
                    {
                        return;
                    }

                    last = $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}";
                }
                catch (HttpRequestException e)
                {
                    last = e.Message;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    last = "no answer within the attempt's time limit";
                }
            }

            if (HasExited)
            {
                throw new InvalidOperationException($"{Describe()} exited before {url} answered 2xx (last: {last}).{Quote()}");
            }

            remaining = timeout - clock.Elapsed;
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }

            await Task.Delay(delay < remaining ? delay : remaining, cancellationToken);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 500));
        }

        throw new TimeoutException($"{url} gave no 2xx answer within {Seconds(timeout)} ({attempts} attempts, last: {last}); {Describe()}.{Quote()}");
    }

    /// <summary>
    /// Sends SIGKILL to the process (and to the processes it started, each by id) unless it already
    /// exited. Returns at once: use <see cref="WaitForExitAsync"/> to wait for the exit.
    /// </summary>
    public void Kill()
    {
        if (!HasExited)
        {
            KillTree(Pid, _process);
        }
    }

    /// <summary>
    /// Graceful stop: SIGTERM to the process, then up to <paramref name="grace"/> for it to exit,
    /// then SIGKILL. Returns once the process has exited. Processes it started and left behind
    /// are killed too.
    /// </summary>
    /// <exception cref="TimeoutException">The process did not even exit after SIGKILL.</exception>
    public async Task TerminateAsync(TimeSpan grace)
    {
        if (HasExited)
        {
            await _exit.WaitAsync(KillWait);
            return;
        }

        var descendants = ProcessTree.Descendants(Pid);
        _ = SysKill(Pid, SigTerm);
        // The grace is a promise to the process: timers run on a coarse tick on Linux and may fire a
        // few milliseconds early, so the remaining time is measured on the monotonic clock.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var exited = false;
        while (!exited && clock.Elapsed < grace)
        {
            try
            {
                await _exit.WaitAsync(grace - clock.Elapsed + TimeSpan.FromMilliseconds(1));
                exited = true;
            }
            catch (TimeoutException)
            {
            }
        }

        if (!exited)
        {
            KillTree(Pid, _process);
            await WaitForExitAsync(KillWait);
        }

        // Whatever it started and did not stop with it would be an orphan now.
        ProcessTree.Kill(descendants);
        await DrainAsync();
    }

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    /// <exception cref="TimeoutException">It did not exit within <paramref name="timeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        int code;
        try
        {
            code = await _exit.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Describe()} did not exit within {Seconds(timeout)}.{Quote()}");
        }

        await DrainAsync();
        return code;
    }

    /// <summary>Kills the process if it is still running, waits (bounded) for its exit and closes its log.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        Kill();
        try
        {
            await _exit.WaitAsync(KillWait);
        }
        catch (TimeoutException)
        {
            // Reported below; the log says what happened.
        }

        await DrainAsync();
        Running.TryRemove(this, out _);
        CloseLog(HasExited ? $"# exited with code {ExitCode}" : "# still running after SIGKILL");
        _process.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} (pid {Pid})";

    private static void KillAllRunning()
    {
        foreach (var process in Running.Keys)
        {
            try
            {
                process.Kill();
            }
            catch (InvalidOperationException)
            {
                // Exited meanwhile.
            }
        }
    }

    private static void KillTree(int pid, Process process)
    {
        var descendants = ProcessTree.Descendants(pid);
        try
        {
            process.Kill(entireProcessTree: false);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
        catch (Win32Exception)
        {
            // Already gone.
        }

        ProcessTree.Kill(descendants);
    }

    private async Task<int> WatchExitAsync()
    {
        // Output is read by our own loops (not the BeginOutputReadLine events), so this completes
        // at exit even when a grandchild still holds the output pipes.
        await _process.WaitForExitAsync();
        return _process.ExitCode;
    }

    private async Task PumpOutputAsync()
    {
        await Task.WhenAll(
            PumpAsync(_process.StandardOutput, "out"),
            PumpAsync(_process.StandardError, "err"));
        List<LineWaiter> orphaned;
        lock (_gate)
        {
            _outputEnded = true;
            orphaned = [.. _waiters];
            _waiters.Clear();
        }

        // The output ends at exit; give the exit code a moment to arrive for a useful message.
        await Task.WhenAny(_exit, Task.Delay(DrainWait));
        foreach (var waiter in orphaned)
        {
            waiter.Matched.TrySetException(new InvalidOperationException($"{Describe()} ended its output without printing a matching line.{Quote()}"));
        }
    }

    private async Task PumpAsync(StreamReader reader, string stream)
    {
        await Task.Yield();
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                OnLine(line, stream);
            }
        }
        catch (IOException)
        {
            // The pipe broke: the output is over.
        }
        catch (ObjectDisposedException)
        {
            // Disposed while reading.
        }
    }

    private void OnLine(string line, string stream)
    {
        List<LineWaiter>? matched = null;
        lock (_gate)
        {
            _recent.Enqueue(line);
            if (_recent.Count > RecentLineCapacity)
            {
                _recent.Dequeue();
            }

            _log?.WriteLine($"{DateTime.Now:HH:mm:ss.fff} {stream} {line}");
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                var waiter = _waiters[i];
                bool isMatch;
                try
                {
                    isMatch = waiter.Predicate(line);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    _waiters.RemoveAt(i);
                    waiter.Matched.TrySetException(e);
                    continue;
                }

                if (isMatch)
                {
                    _waiters.RemoveAt(i);
                    (matched ??= []).Add(waiter);
                }
            }
        }

        if (matched is not null)
        {
            foreach (var waiter in matched)
            {
                waiter.Matched.TrySetResult();
            }
        }
    }

    private void Forget(LineWaiter waiter)
    {
        lock (_gate)
        {
            _waiters.Remove(waiter);
        }
    }

    private async Task DrainAsync() => await Task.WhenAny(_output, Task.Delay(DrainWait));

    private void CloseLog(string footer)
    {
        lock (_gate)
        {
            if (_log is null)
            {
                return;
            }

            _log.WriteLine(footer);
            _log.Dispose();
            _log = null;
        }
    }

    private bool ProcessHasExited()
    {
        try
        {
            return _process.HasExited;
        }
        catch (InvalidOperationException)
        {
            return _exit.IsCompleted;
        }
    }

    private int? SafeExitCode()
    {
        try
        {
            return _process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private string Describe()
    {
        var code = ExitCode;
        return code is null ? $"{this} (still running)" : $"{this} (exited with code {code})";
    }

    private string Quote()
    {
        string[] lines;
        lock (_gate)
        {
            lines = [.. _recent.Skip(Math.Max(0, _recent.Count - QuotedLines))];
        }

        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $" Log: {LogPath}.");
        text.Append(CultureInfo.InvariantCulture, $"{Environment.NewLine}Last {lines.Length} lines of output:");
        foreach (var line in lines)
        {
            text.Append(Environment.NewLine).Append("  | ").Append(line);
        }

        return text.ToString();
    }

    private static string Seconds(TimeSpan timeout) => $"{timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s";

    private static string LogDirectory()
    {
        string directory;
        try
        {
            directory = RepoPaths.Logs;
        }
        catch (InvalidOperationException)
        {
            directory = Path.Combine(Path.GetTempPath(), "realtime-test-logs");
        }

        Directory.CreateDirectory(directory);
        return directory;
    }

    private static string Sanitize(string name)
    {
        var chars = name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_').ToArray();
        return chars.Length == 0 ? "process" : new string(chars);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);

    private sealed class LineWaiter(Func<string, bool> predicate)
    {
        public Func<string, bool> Predicate { get; } = predicate;

        public TaskCompletionSource Matched { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Descendants of a process, read from <c>/proc</c>, identified by pid and start time so that a reused pid is never killed.</summary>
    private static class ProcessTree
    {
        public static List<(int Pid, long StartTime)> Descendants(int root)
        {
            var result = new List<(int, long)>();
            if (!OperatingSystem.IsLinux())
            {
                return result;
            }

            var children = new Dictionary<int, List<(int Pid, long StartTime)>>();
            foreach (var dir in SafeEnumerate())
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) &&
                    TryReadStat(pid, out var parent, out var start))
                {
                    if (!children.TryGetValue(parent, out var list))
                    {
                        children[parent] = list = [];
                    }

                    list.Add((pid, start));
                }
            }

            var queue = new Queue<int>([root]);
            while (queue.Count > 0)
            {
                if (children.TryGetValue(queue.Dequeue(), out var list))
                {
                    foreach (var child in list)
                    {
                        result.Add(child);
                        queue.Enqueue(child.Pid);
                    }
                }
            }

            return result;
        }

        public static void Kill(List<(int Pid, long StartTime)> processes)
        {
            foreach (var (pid, start) in processes)
            {
                if (TryReadStat(pid, out _, out var now) && now == start)
                {
                    _ = SysKill(pid, SigKill);
                }
            }
        }

        private static string[] SafeEnumerate()
        {
            try
            {
                return Directory.GetDirectories("/proc");
            }
            catch (IOException)
            {
                return [];
            }
            catch (UnauthorizedAccessException)
            {
                return [];
            }
        }

        // /proc/<pid>/stat: "pid (comm) state ppid ... starttime(22nd field) ..."; comm may hold spaces and parentheses.
        private static bool TryReadStat(int pid, out int parent, out long startTime)
        {
            parent = 0;
            startTime = 0;
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            }
            catch (IOException)
            {
                return false;
            }
            catch (UnauthorizedAccessException)
            {
                return false;
            }

            var close = stat.LastIndexOf(')');
            if (close < 0)
            {
                return false;
            }

            var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length > 19 &&
                int.TryParse(fields[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out parent) &&
                long.TryParse(fields[19], NumberStyles.Integer, CultureInfo.InvariantCulture, out startTime);
        }
    }
}
