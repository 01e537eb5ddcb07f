using System.Diagnostics;
using System.Globalization;
using System.Net;
using Realtime.Testing;

namespace Realtime.Testing.Tests;

public sealed class ManagedProcessTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);

    private static ProcessSpec Shell(string name, string script, IReadOnlyDictionary<string, string?>? environment = null) => new()
    {
        Name = name,
        FileName = "/bin/sh",
        Arguments = ["-c", script],
        Environment = environment ?? new Dictionary<string, string?>(),
    };

    [Fact(Timeout = 10_000)]
    public async Task Waits_for_a_line_then_kill_ends_the_process_and_what_it_started()
    {
        await using var process = ManagedProcess.Start(Shell("hello", "echo hello; sleep 30"));

        await process.WaitForLineAsync(l => l == "hello", Wait, TestContext.Current.CancellationToken);
        Assert.False(process.HasExited);
        // The shell prints before it forks `sleep`: wait (bounded) for the child to exist.
        var sleeper = await SingleChildAsync(process.Pid);

        var clock = Stopwatch.StartNew();
        process.Kill();
        var code = await process.WaitForExitAsync(Wait, TestContext.Current.CancellationToken);

        output.WriteLine($"exit code {code} after {clock.ElapsedMilliseconds} ms; log {process.LogPath}");
        Assert.Equal(137, code); // 128 + SIGKILL
        Assert.True(process.HasExited);
        Assert.Equal(137, process.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"took {clock.Elapsed}");
        await AssertGoneAsync(sleeper);
        Assert.Contains("hello", await File.ReadAllTextAsync(process.LogPath, TestContext.Current.CancellationToken), StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_line_seen_before_the_wait_completes_it_at_once()
    {
        await using var process = ManagedProcess.Start(Shell("early", "echo early-line; exec sleep 30"));
        await process.WaitForLineAsync(l => l == "early-line", Wait, TestContext.Current.CancellationToken);

        var second = process.WaitForLineAsync(l => l.StartsWith("early", StringComparison.Ordinal), TimeSpan.FromMilliseconds(1), TestContext.Current.CancellationToken);

        Assert.True(second.IsCompletedSuccessfully);
        Assert.Equal(["early-line"], process.RecentLines);
    }

    [Fact(Timeout = 10_000)]
    public async Task Captures_stdout_and_stderr()
    {
        await using var process = ManagedProcess.Start(Shell("streams", "echo to-out; echo to-err >&2; exec sleep 30"));

        await process.WaitForLineAsync(l => l == "to-out", Wait, TestContext.Current.CancellationToken);
        await process.WaitForLineAsync(l => l == "to-err", Wait, TestContext.Current.CancellationToken);

        var log = await ReadSharedAsync(process.LogPath);
        Assert.Contains(" out to-out", log, StringComparison.Ordinal);
        Assert.Contains(" err to-err", log, StringComparison.Ordinal);
        Assert.Equal(Path.Combine(RepoPaths.Logs, $"streams-{process.Pid}.log"), process.LogPath);
    }

    [Fact(Timeout = 10_000)]
    public async Task Timeout_message_quotes_the_last_lines_and_says_the_process_still_runs()
    {
        await using var process = ManagedProcess.Start(Shell("quiet", "echo first; echo second; exec sleep 30"));
        await process.WaitForLineAsync(l => l == "second", Wait, TestContext.Current.CancellationToken);

        var error = await Assert.ThrowsAsync<TimeoutException>(() =>
            process.WaitForLineAsync(l => l == "never", TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken));

        output.WriteLine(error.Message);
        Assert.Contains("quiet", error.Message, StringComparison.Ordinal);
        Assert.Contains($"pid {process.Pid}", error.Message, StringComparison.Ordinal);
        Assert.Contains("still running", error.Message, StringComparison.Ordinal);
        Assert.Contains("0.2 s", error.Message, StringComparison.Ordinal);
        Assert.Contains("| first", error.Message, StringComparison.Ordinal);
        Assert.Contains("| second", error.Message, StringComparison.Ordinal);
        Assert.Contains(process.LogPath, error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task Timeout_message_quotes_only_the_last_50_lines()
    {
        await using var process = ManagedProcess.Start(Shell("counter", "i=1; while [ $i -le 120 ]; do echo line-$i; i=$((i+1)); done; exec sleep 30"));
        await process.WaitForLineAsync(l => l == "line-120", Wait, TestContext.Current.CancellationToken);

        var error = await Assert.ThrowsAsync<TimeoutException>(() =>
            process.WaitForLineAsync(l => l == "never", TimeSpan.FromMilliseconds(50), TestContext.Current.CancellationToken));

        Assert.Contains("| line-71" + Environment.NewLine, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("| line-70" + Environment.NewLine, error.Message, StringComparison.Ordinal);
        Assert.EndsWith("| line-120", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task Waiting_for_a_line_of_a_process_that_exited_fails_at_once_with_its_exit_code()
    {
        await using var process = ManagedProcess.Start(Shell("bye", "echo bye; exit 4"));

        Assert.Equal(4, await process.WaitForExitAsync(Wait, TestContext.Current.CancellationToken));
        Assert.Equal(4, process.ExitCode);
        await process.WaitForLineAsync(l => l == "bye", TimeSpan.Zero, TestContext.Current.CancellationToken);

        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            process.WaitForLineAsync(l => l == "never", TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1));
        Assert.Contains("exited with code 4", error.Message, StringComparison.Ordinal);
        Assert.Contains("| bye", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_pending_wait_fails_when_the_process_exits_without_the_line()
    {
        await using var process = ManagedProcess.Start(Shell("dies", "echo up; sleep 0.3; exit 2"));
        await process.WaitForLineAsync(l => l == "up", Wait, TestContext.Current.CancellationToken);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            process.WaitForLineAsync(l => l == "never", TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));

        Assert.Contains("exited with code 2", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task Terminate_sends_sigterm_and_the_process_exits_by_itself()
    {
        await using var process = ManagedProcess.Start(Shell("graceful", "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done"));
        await process.WaitForLineAsync(l => l == "ready", Wait, TestContext.Current.CancellationToken);

        await process.TerminateAsync(TimeSpan.FromSeconds(5));

        Assert.True(process.HasExited);
        Assert.Equal(3, process.ExitCode);
        Assert.Contains("got-term", process.RecentLines);
    }

    [Fact(Timeout = 10_000)]
    public async Task Terminate_kills_after_the_grace_period_when_sigterm_is_ignored()
    {
        await using var process = ManagedProcess.Start(Shell("stubborn", "trap '' TERM; sleep 30 & echo child=$!; wait"));
        await process.WaitForLineAsync(l => l.StartsWith("child=", StringComparison.Ordinal), Wait, TestContext.Current.CancellationToken);
        var child = int.Parse(process.RecentLines.Single(l => l.StartsWith("child=", StringComparison.Ordinal))[6..], CultureInfo.InvariantCulture);

        var clock = Stopwatch.StartNew();
        await process.TerminateAsync(TimeSpan.FromMilliseconds(300));

        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(300));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"took {clock.Elapsed}");
        Assert.Equal(137, process.ExitCode);
        await AssertGoneAsync(child);
    }

    [Fact(Timeout = 10_000)]
    public async Task Dispose_kills_a_running_process()
    {
        var process = ManagedProcess.Start(Shell("disposed", "echo up; exec sleep 30"));
        await process.WaitForLineAsync(l => l == "up", Wait, TestContext.Current.CancellationToken);
        var pid = process.Pid;

        await process.DisposeAsync();

        Assert.True(process.HasExited);
        await AssertGoneAsync(pid);
        Assert.EndsWith("# exited with code 137", (await File.ReadAllTextAsync(process.LogPath, TestContext.Current.CancellationToken)).TrimEnd(), StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task Keeps_a_bounded_ring_of_recent_lines()
    {
        await using var process = ManagedProcess.Start(Shell("chatty", "seq 1 2500"));

        Assert.Equal(0, await process.WaitForExitAsync(Wait, TestContext.Current.CancellationToken));

        var lines = process.RecentLines;
        Assert.Equal(ManagedProcess.RecentLineCapacity, lines.Count);
        Assert.Equal("501", lines[0]);
        Assert.Equal("2500", lines[^1]);
    }

    [Fact(Timeout = 10_000)]
    public async Task Environment_sets_and_removes_variables()
    {
        await using var process = ManagedProcess.Start(Shell(
            "env",
            "echo \"A=$REALTIME_TEST_A HOME=${HOME-unset}\"",
            new Dictionary<string, string?> { ["REALTIME_TEST_A"] = "one two", ["HOME"] = null }));

        Assert.Equal(0, await process.WaitForExitAsync(Wait, TestContext.Current.CancellationToken));
        Assert.Equal(["A=one two HOME=unset"], process.RecentLines);
    }

    [Fact(Timeout = 10_000)]
    public async Task Waits_for_http_ok()
    {
        var port = FreePort.Next();
        await using var process = ManagedProcess.Start(Shell("http", "exec sleep 30"));
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");

        // Not listening yet: the first attempts fail, then the server comes up.
        var wait = process.WaitForHttpOkAsync(new Uri($"http://127.0.0.1:{port}/readyz"), Wait, TestContext.Current.CancellationToken);
        await Task.Delay(300, TestContext.Current.CancellationToken);
        listener.Start();
        var serve = Task.Run(async () =>
        {
            var context = await listener.GetContextAsync();
            context.Response.StatusCode = 200;
            context.Response.Close();
        }, TestContext.Current.CancellationToken);

        await wait;
        await serve.WaitAsync(Wait, TestContext.Current.CancellationToken);
    }

    [Fact(Timeout = 10_000)]
    public async Task Waiting_for_http_ok_times_out_with_the_last_error()
    {
        await using var process = ManagedProcess.Start(Shell("no-http", "echo idle; exec sleep 30"));
        var url = new Uri($"http://127.0.0.1:{FreePort.Next()}/readyz");

        var error = await Assert.ThrowsAsync<TimeoutException>(() => process.WaitForHttpOkAsync(url, TimeSpan.FromMilliseconds(500), TestContext.Current.CancellationToken));

        output.WriteLine(error.Message);
        Assert.Contains(url.ToString(), error.Message, StringComparison.Ordinal);
        Assert.Contains("still running", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Starting_a_missing_executable_fails_clearly()
    {
        var error = Assert.Throws<InvalidOperationException>(() =>
            ManagedProcess.Start(new ProcessSpec { Name = "missing", FileName = "/nonexistent/realtime-no-such-binary" }));

        Assert.Contains("/nonexistent/realtime-no-such-binary", error.Message, StringComparison.Ordinal);
        await Task.CompletedTask;
    }

    [Fact]
    public void Dotnet_dll_spec_runs_the_dll_with_the_dotnet_host()
    {
        var spec = ProcessSpec.DotnetDll("gw-0", "/repo/src/Gateway/bin/Release/net10.0/Realtime.Gateway.dll", new Dictionary<string, string?> { ["X"] = "1" }, "--a", "b");

        Assert.Equal("gw-0", spec.Name);
        Assert.Equal(ProcessSpec.DotnetHost(), spec.FileName);
        Assert.Equal(["/repo/src/Gateway/bin/Release/net10.0/Realtime.Gateway.dll", "--a", "b"], spec.Arguments);
        Assert.Equal("1", spec.Environment["X"]);
        Assert.Equal("/repo/src/Gateway/bin/Release/net10.0", spec.WorkingDirectory);
    }

    [Fact(Timeout = 20_000)]
    public async Task Runs_a_dotnet_dll()
    {
        // The test assembly itself is a dll the dotnet host can run: ask it for its usage.
        var dll = Path.Combine(AppContext.BaseDirectory, "Realtime.Testing.Tests.dll");
        await using var process = ManagedProcess.Start(ProcessSpec.DotnetDll("dotnet-dll", dll, null, "--help"));

        var code = await process.WaitForExitAsync(TimeSpan.FromSeconds(15), TestContext.Current.CancellationToken);

        Assert.True(code == 0, string.Join(Environment.NewLine, process.RecentLines));
        Assert.Contains(process.RecentLines, l => l.Contains("Execute a .NET Test Application", StringComparison.Ordinal));
    }

    private static async Task<int> SingleChildAsync(int parent)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            var children = ChildPids(parent);
            if (children.Count == 1)
            {
                return children[0];
            }

            Assert.True(DateTime.UtcNow < deadline, $"pid {parent} has {children.Count} children after {Wait}");
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }

    private static List<int> ChildPids(int parent) =>
        [.. Directory.GetDirectories("/proc")
            .Select(Path.GetFileName)
            .Where(n => n!.All(char.IsAsciiDigit))
            .Select(n => int.Parse(n!, CultureInfo.InvariantCulture))
            .Where(pid => ParentOf(pid) == parent)];

    private static int? ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The process is gone or a zombie (dead, waiting to be reaped by whoever inherited it).</summary>
    private static async Task AssertGoneAsync(int pid)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(3))
        {
            string stat;
            try
            {
                stat = await File.ReadAllTextAsync($"/proc/{pid}/stat");
            }
            catch (IOException)
            {
                return;
            }

            if (stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z'))
            {
                return;
            }

            await Task.Delay(20);
        }

        Assert.Fail($"process {pid} is still alive");
    }

    private static async Task<string> ReadSharedAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync();
    }
}
