using System.Globalization;
using System.Text.Json.Nodes;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// A real browser (Debian's chromium through playwright-core, <c>tests/Browser/scenario.mjs</c>)
/// listens over SSE, long-poll or the protobuf WebSocket subprotocol; midway the gateway closes
/// the browser's connections (<c>POST /admin/disconnect</c>). The page's client comes back by
/// itself, resumes from its last position, and gets every event exactly once, in order.
/// </summary>
/// <remarks>
/// Needs <c>node</c>, <c>/usr/bin/chromium</c> and <c>npm ci</c> in <c>tests/Browser</c>:
/// <c>./realtime.sh test</c> installs them (<c>ensure_browser</c>).
/// </remarks>
public sealed class BrowserTests(BrowserTests.Pipeline shared, ITestOutputHelper output) : IClassFixture<BrowserTests.Pipeline>
{
    private const int Events = 40;
    private const string Chromium = "/usr/bin/chromium";
    private static readonly TimeSpan ScenarioBound = TimeSpan.FromSeconds(90);

    [Fact]
    public Task Sse_browser_reconnects_with_Last_Event_ID_and_gets_every_event_once() => RunAsync("sse");

    [Fact]
    public Task Long_poll_browser_polls_again_with_its_cursor_and_gets_every_event_once() => RunAsync("poll");

    [Fact]
    public Task Protobuf_browser_resubscribes_since_its_last_position_and_gets_every_event_once() => RunAsync("proto");

    private async Task RunAsync(string transport)
    {
        var directory = Path.Combine(RepoPaths.Root, "tests", "Browser");
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: apt-get install chromium (./realtime.sh test does it).");
        Assert.True(
            Directory.Exists(Path.Combine(directory, "node_modules", "playwright-core")),
            $"{directory}/node_modules is missing: run 'npm ci' there (./realtime.sh test does it).");

        var stack = shared.Stack;
        // A subject and a channel of this test alone: the disconnect closes nothing else.
        var id = Guid.NewGuid().ToString("N")[..12];
        var subject = $"browser-{transport}-{id}";
        var channel = $"room:browser-{transport}-{id}";
        await using var scenario = ManagedProcess.Start(new ProcessSpec
        {
            Name = $"browser-{transport}",
            FileName = "node",
            Arguments = [Path.Combine(directory, "scenario.mjs"), transport],
            WorkingDirectory = directory,
            Environment = new Dictionary<string, string?>
            {
                ["RT_GATEWAY"] = stack.Gateways[0].Http.GetLeftPart(UriPartial.Authority),
                // The browser passes its token in URLs: a short-lived one, as the gateway requires there.
                ["RT_SUBSCRIBER_TOKEN"] = stack.TokenWith(subject, [channel], TimeSpan.FromMinutes(5)),
                ["RT_PUBLISHER_TOKEN"] = stack.Token($"publisher-{id}", channel),
                ["RT_SUBJECT"] = subject,
                ["RT_CHANNEL"] = channel,
                ["RT_EVENTS"] = Events.ToString(CultureInfo.InvariantCulture),
                ["RT_CHROMIUM"] = Chromium,
            },
        });

        var exitCode = await scenario.WaitForExitAsync(ScenarioBound);
        var lines = scenario.RecentLines;
        foreach (var line in lines)
        {
            output.WriteLine(line);
        }

        var last = lines.LastOrDefault(l => l.StartsWith("{\"transport\"", StringComparison.Ordinal));
        Assert.True(last is not null, $"The scenario printed no result (exit code {exitCode}); log: {scenario.LogPath}");
        var result = JsonNode.Parse(last)!.AsObject();
        var errors = Items(result, "errors", n => n.GetValue<string>());
        Assert.True(exitCode == 0, $"The scenario did not run (exit code {exitCode}): {string.Join("; ", errors)}");
        Assert.Empty(errors);
        Assert.Equal(transport, (string?)result["transport"]);

        var expected = Enumerable.Range(1, Events).ToList();
        Assert.Equal(expected, Items(result, "published", n => n.GetValue<int>()));
        Assert.True(result["disconnect"]?["closed"]?.GetValue<int>() >= 1, $"The disconnect closed nothing: {result["disconnect"]?.ToJsonString() ?? "not called"}");

        var received = Items(result, "received", n => n.GetValue<int>());
        var duplicates = received.GroupBy(n => n).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        var missing = expected.Except(received).ToList();
        Assert.True(
            duplicates.Count == 0 && missing.Count == 0,
            $"Not exactly once: missing [{string.Join(',', missing)}], duplicated [{string.Join(',', duplicates)}]; received [{string.Join(',', received)}]");
        Assert.Equal(expected, received);
        Assert.Empty(Items(result, "resyncs", n => n.ToJsonString()));

        Assert.True(result["reconnects"]!.GetValue<int>() >= 1, "The browser never reconnected.");
        Assert.True(result["resumedWithCursor"]!.GetValue<bool>(), "The browser came back without its position.");
    }

    private static List<T> Items<T>(JsonObject result, string name, Func<JsonNode, T> read) =>
        [.. (result[name]?.AsArray() ?? []).Select(n => read(n!))];

    /// <summary>One gateway; the browser's page is at its origin (the tests route the page itself).</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "browser", gateways: 1);
}
