using System.Text.Json.Nodes;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>permessage-deflate: off by default, negotiated when enabled and offered.</summary>
public sealed class CompressionTests(TestInfrastructure infrastructure)
{
    [Fact]
    public async Task Compression_is_off_by_default_even_when_the_client_offers_it()
    {
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "deflate", gateways: 1);
        var channel = $"room:{Guid.NewGuid():N}";

        await using var plain = await TestClient.ConnectAsync(pipeline.Gateways[0].WebSocket, pipeline.Token("a", "room:*"), offerCompression: true);
        Assert.DoesNotContain("permessage-deflate", plain.NegotiatedExtensions, StringComparison.Ordinal);
        await plain.SubscribeAsync(channel);
        await plain.PublishAsync(channel, new JsonObject { ["text"] = new string('z', 10_000) });
        Assert.Equal(10_000, ((string)(await plain.NextEventAsync())["data"]!["text"]!).Length);
    }

    [Fact]
    public async Task A_node_with_compression_enabled_negotiates_it_and_delivers_normally()
    {
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "deflate-on", gateways: 1, settings: new Dictionary<string, string?>
        {
            ["Gateway__EnableCompression"] = "true",
        });
        var channel = $"room:{Guid.NewGuid():N}";
        await using var client = await TestClient.ConnectAsync(pipeline.Gateways[0].WebSocket, pipeline.Token("b", "room:*"), offerCompression: true);
        Assert.Contains("permessage-deflate", client.NegotiatedExtensions, StringComparison.Ordinal);
        await client.SubscribeAsync(channel);
        await client.PublishAsync(channel, new JsonObject { ["text"] = new string('z', 10_000) });
        Assert.Equal(10_000, ((string)(await client.NextEventAsync())["data"]!["text"]!).Length);
    }
}
