using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Realtime.Contracts.V1;

namespace Realtime.EndToEnd.Tests;

/// <summary>The history API over HTTP and gRPC: pages of events after a position, with the resync rules of a resume.</summary>
public sealed class HistoryTests(ResumeTests.Pipeline shared) : IClassFixture<ResumeTests.Pipeline>
{
    private LocalPipeline Stack => shared.Stack;

    [Fact]
    public async Task Http_history_pages_through_the_events_after_a_position_from_the_window_and_from_kafka()
    {
        var channel = $"room:{Guid.NewGuid():N}";
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        var ok = await publisher.SubscribeAsync(channel);
        var epoch = (string)ok["epoch"]!;
        const int Published = 120;
        for (var i = 0; i < Published; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        Assert.Equal(Published, (await publisher.TakeEventsAsync(Published, TimeSpan.FromSeconds(30))).Count);

        using var http = new HttpClient { BaseAddress = Stack.Gateways[1].Http, Timeout = TimeSpan.FromSeconds(20) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Stack.Token("reader", "room:*"));
        var seen = new List<int>();
        ulong since = 0;
        var pages = 0;
        while (true)
        {
            var page = JsonNode.Parse(await http.GetStringAsync($"/v1/channels/{channel}/events?epoch={epoch}&since={since}&limit=50"))!;
            pages++;
            Assert.Equal(epoch, (string?)page["epoch"]);
            Assert.Equal((ulong)Published, (ulong)page["seq"]!);
            var events = page["events"]!.AsArray();
            Assert.Equal(Enumerable.Range((int)since + 1, events.Count).Select(i => (ulong)i), events.Select(e => (ulong)e!["seq"]!));
            seen.AddRange(events.Select(e => (int)e!["data"]!));
            since += (ulong)events.Count;
            if (!(bool)page["more"]!)
            {
                break;
            }
        }

        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(0, Published), seen);

        var stale = await http.GetAsync($"/v1/channels/{channel}/events?epoch=old&since=3");
        Assert.Equal(HttpStatusCode.Conflict, stale.StatusCode);
        Assert.Equal("epoch_changed", (string?)JsonNode.Parse(await stale.Content.ReadAsStringAsync())!["reason"]);

        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync($"/v1/channels/{channel}/events?since=-1")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await http.GetAsync("/v1/channels/secret:1/events")).StatusCode);
        using var anonymous = new HttpClient { BaseAddress = Stack.Gateways[1].Http, Timeout = TimeSpan.FromSeconds(20) };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/v1/channels/{channel}/events")).StatusCode);
    }

    [Fact]
    public async Task Grpc_history_returns_a_page_and_a_resync_for_a_stale_position()
    {
        var channel = $"room:{Guid.NewGuid():N}";
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        var ok = await publisher.SubscribeAsync(channel);
        for (var i = 0; i < 10; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        Assert.Equal(10, (await publisher.TakeEventsAsync(10, TimeSpan.FromSeconds(30))).Count);

        using var grpc = GrpcChannel.ForAddress(Stack.Gateways[0].Grpc);
        var client = new Channels.ChannelsClient(grpc);
        var page = await client.HistoryAsync(
            new HistoryRequest { Channel = channel, Epoch = (string)ok["epoch"]!, SinceSeq = 4, Limit = 3 },
            Stack.ServiceAuth("room:*"),
            deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Null(page.Resync);
        Assert.Equal(10UL, page.HeadSeq);
        Assert.True(page.More);
        Assert.Equal([5UL, 6UL, 7UL], page.Events.Select(e => e.Seq));
        Assert.Equal(["4", "5", "6"], page.Events.Select(e => e.Payload.ToStringUtf8()));

        var stale = await client.HistoryAsync(new HistoryRequest { Channel = channel, Epoch = "old" }, Stack.ServiceAuth("room:*"), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal("epoch_changed", stale.Resync.Reason);
        Assert.Empty(stale.Events);

        var denied = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.HistoryAsync(new HistoryRequest { Channel = channel }, Stack.ServiceAuth("other:*"), deadline: DateTime.UtcNow.AddSeconds(10)));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
    }
}
