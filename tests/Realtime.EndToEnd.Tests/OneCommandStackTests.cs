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
    private static readonly int[] FixedPorts = [8080, 8081, 9080, 9081, 8090, 9092];

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

            await up.TerminateAsync(TimeSpan.FromSeconds(30));
            output.WriteLine(string.Join('\n', up.RecentLines.TakeLast(8)));
            Assert.Contains(up.RecentLines, l => l.Contains("stopped.", StringComparison.Ordinal));
        }

        var stillListening = FixedPorts.Where(IsListening).ToArray();
        Assert.True(stillListening.Length == 0, $"ports {string.Join(", ", stillListening)} still listening after stop");
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
