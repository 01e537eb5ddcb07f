using System.Net.Sockets;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Net.Client;
using Realtime.Contracts.V1;
using Realtime.Hosting;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// The README's first command, as a user runs it: <c>./realtime.sh up</c> brings up the whole
/// stack on its fixed ports, a client on gw-1 gets what is published on gw-0 and over gRPC, and
/// stopping the command stops everything it started.
/// </summary>
public sealed class OneCommandStackTests(ITestOutputHelper output)
{
    private static readonly int[] FixedPorts = [8080, 8081, 9080, 9081, 8090, 9092, 9190];
    private const string PrometheusBinary = "/usr/bin/prometheus";

    [Fact]
    public async Task Realtime_sh_up_starts_the_stack_on_its_fixed_ports_and_stops_it_again()
    {
        var busy = FixedPorts.Where(IsListening).ToArray();
        Assert.True(busy.Length == 0, $"ports {string.Join(", ", busy)} are taken: is another './realtime.sh up' running?");

        var up = ManagedProcess.Start(new ProcessSpec
        {
            Name = "realtime-up",
            FileName = Path.Combine(RepoPaths.Root, "realtime.sh"),
            Arguments = ["up"],
            WorkingDirectory = RepoPaths.Root,
        });
        await using (up)
        {
            await up.WaitForLineAsync(l => l.Contains("Realtime Pipeline is up", StringComparison.Ordinal), TimeSpan.FromMinutes(4));
            var key = (await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, ".run", "dev-signing-key"))).Trim();
            var token = DevTokens.Mint(key, "alice", ["room:*"], TimeSpan.FromMinutes(5), "realtime-dev", "realtime");
            var channel = $"room:{Guid.NewGuid():N}";

            await using var listener = await TestClient.ConnectAsync(new Uri("ws://127.0.0.1:8081/ws"), token);
            await using var publisher = await TestClient.ConnectAsync(new Uri("ws://127.0.0.1:8080/ws"), token);
            Assert.Equal("ok", (string?)(await listener.SubscribeAsync(channel))["type"]);

            var ack = await publisher.PublishAsync(channel, new JsonObject { ["text"] = "over websocket" });
            var viaWebSocket = await listener.NextEventAsync(TimeSpan.FromSeconds(5));
            Assert.Equal((string?)ack["eventId"], (string?)viaWebSocket["eventId"]);

            using var grpc = GrpcChannel.ForAddress("http://127.0.0.1:9080");
            var response = await new Publisher.PublisherClient(grpc).PublishAsync(
                new PublishRequest { Channel = channel, EventType = "message.created", Payload = ByteString.CopyFromUtf8("{\"text\":\"over grpc\"}") },
                new Grpc.Core.Metadata { { "authorization", $"Bearer {token}" } },
                deadline: DateTime.UtcNow.AddSeconds(10));
            var viaGrpc = await listener.NextEventAsync(TimeSpan.FromSeconds(5));
            Assert.Equal(response.EventId, (string?)viaGrpc["eventId"]);

            await RtctlLagShowsEveryPartitionAndNodeTopicAsync();
            await RealPrometheusScrapesEveryProcessAsync();

            await up.TerminateAsync(TimeSpan.FromSeconds(30));
            output.WriteLine(string.Join('\n', up.RecentLines.TakeLast(8)));
            Assert.Contains(up.RecentLines, l => l.Contains("stopped.", StringComparison.Ordinal));
        }

        var stillListening = FixedPorts.Where(IsListening).ToArray();
        Assert.True(stillListening.Length == 0, $"ports {string.Join(", ", stillListening)} still listening after stop");
    }

    /// <summary><c>./realtime.sh rtctl lag --json</c> against the running stack: the fanout group on every ingress partition, each gateway on its own topic.</summary>
    private async Task RtctlLagShowsEveryPartitionAndNodeTopicAsync()
    {
        await using var rtctl = ManagedProcess.Start(new ProcessSpec
        {
            Name = "rtctl-lag",
            FileName = Path.Combine(RepoPaths.Root, "realtime.sh"),
            Arguments = ["rtctl", "lag", "--json"],
            WorkingDirectory = RepoPaths.Root,
        });
        Assert.Equal(0, await rtctl.WaitForExitAsync(TimeSpan.FromMinutes(2)));
        var json = string.Join('\n', rtctl.RecentLines.SkipWhile(l => !l.TrimStart().StartsWith('[')));
        var rows = JsonNode.Parse(json)!.AsArray().Select(r => r!.AsObject()).ToList();
        output.WriteLine($"rtctl lag: {rows.Count} rows");
        Assert.Equal(12, rows.Count(r => (string?)r["group"] == "rt.fanout" && (string?)r["topic"] == "rt.ingress"));
        foreach (var node in new[] { "gw-0", "gw-1" })
        {
            Assert.Contains(rows, r => (string?)r["group"] == $"rt.gateway.{node}" && (string?)r["topic"] == $"rt.node.{node}");
        }

        Assert.All(rows, r => Assert.True((long)r["lag"]! >= 0));
    }

    /// <summary>Debian's Prometheus scrapes the gateways, the fanout and the Kafka host of the running stack.</summary>
    private static async Task RealPrometheusScrapesEveryProcessAsync()
    {
        Assert.True(File.Exists(PrometheusBinary), $"{PrometheusBinary} is missing: apt-get install prometheus (./realtime.sh test does it).");
        var directory = Directory.CreateTempSubdirectory("realtime-prometheus");
        var config = Path.Combine(directory.FullName, "prometheus.yml");
        await File.WriteAllTextAsync(config, """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: realtime-gateway
                static_configs: [{ targets: ["127.0.0.1:8080", "127.0.0.1:8081"] }]
              - job_name: realtime-fanout
                static_configs: [{ targets: ["127.0.0.1:8090"] }]
              - job_name: realtime-embedded-kafka
                static_configs: [{ targets: ["127.0.0.1:9190"] }]
            """);
        try
        {
            await ScrapeWithPrometheusAsync(directory.FullName, config);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static async Task ScrapeWithPrometheusAsync(string directory, string config)
    {
        var port = FreePort.Next();
        await using var prometheus = ManagedProcess.Start(new ProcessSpec
        {
            Name = "prometheus",
            FileName = PrometheusBinary,
            Arguments = [$"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory, "data")}", $"--web.listen-address=127.0.0.1:{port}"],
            WorkingDirectory = directory,
        });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        JsonArray? up = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                up = JsonNode.Parse(await http.GetStringAsync("/api/v1/query?query=up"))?["data"]?["result"]?.AsArray();
                if (up is { Count: 4 } && up.All(r => (string?)r!["value"]![1] == "1"))
                {
                    break;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(500);
        }

        Assert.True(up is { Count: 4 } && up.All(r => (string?)r!["value"]![1] == "1"), $"targets not all up: {up?.ToJsonString() ?? "no answer"}");
        var delivered = JsonNode.Parse(await http.GetStringAsync("/api/v1/query?query=sum(realtime_delivery_latency_seconds_count%7Bhop%3D%22end_to_end%22%7D)"))!["data"]!["result"]!.AsArray();
        Assert.True(double.Parse((string)delivered[0]!["value"]![1]!, System.Globalization.CultureInfo.InvariantCulture) >= 2, "the events delivered above are not in Prometheus");
    }

    private static bool IsListening(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect("127.0.0.1", port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
