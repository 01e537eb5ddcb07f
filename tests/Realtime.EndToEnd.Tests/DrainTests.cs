using System.Collections.Concurrent;
using System.Net.WebSockets;
using Google.Protobuf;
using Realtime.Contracts.V1;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>A gateway told to stop sends its clients away gradually, and they lose nothing.</summary>
public sealed class DrainTests(TestInfrastructure infrastructure, ITestOutputHelper output)
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_gateway_with_a_thousand_clients_drains_them_to_the_other_over_the_window_and_they_get_every_event()
    {
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "drain", gateways: 2, fanouts: 1, settings: new Dictionary<string, string?>
        {
            ["Gateway__DrainWindow"] = Window.ToString(),
        });
        var channels = Enumerable.Range(0, 50).Select(i => $"room:drain-{i}").ToArray();
        var audit = new DeliveryAudit();
        var subscribers = new List<ResumingSubscriber>();
        for (var s = 0; s < 1_000; s++)
        {
            subscribers.Add(await ResumingSubscriber.StartAsync(pipeline, 0, $"d{s}", [channels[s % channels.Length]], audit));
        }

        // Besides the WebSocket clients: an SSE stream and a held long-poll on the draining node.
        var sseToken = pipeline.Token("sse", "room:*");
        var sse = await SseClient.OpenAsync(pipeline.Gateways[0].Http, $"channels={channels[0]}", sseToken);
        await sse.NextFrameAsync("ok");
        using var poller = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        poller.DefaultRequestHeaders.Authorization = new("Bearer", pipeline.Token("poller", "room:*"));
        var pollStart = System.Text.Json.Nodes.JsonNode.Parse(await poller.GetStringAsync(new Uri(pipeline.Gateways[0].Http, "/v1/poll?channels=room:drain-quiet")))!;

        var publisher = pipeline.PublisherClient(1);
        var auth = pipeline.ServiceAuth("room:*");
        var published = 0;
        var publishedOnFirst = new ConcurrentQueue<int>();
        using var stop = new CancellationTokenSource();
        var flow = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var request = new PublishBatchRequest();
                foreach (var channel in channels)
                {
                    request.Events.Add(new PublishRequest { Channel = channel, EventType = "n", Payload = ByteString.CopyFromUtf8(published.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
                    if (channel == channels[0])
                    {
                        publishedOnFirst.Enqueue(published);
                    }

                    audit.Published(channel, published++);
                }

                await publisher.PublishBatchAsync(request, auth, deadline: DateTime.UtcNow.AddSeconds(30));
                await Task.Delay(200, CancellationToken.None);
            }
        });

        // Each client, when its gateway closes it, resumes on the other one at once.
        var sigterm = DateTime.UtcNow;
        var left = new ConcurrentBag<TimeSpan>();
        var moves = subscribers.Select(s => Task.Run(async () =>
        {
            await s.Disconnected.WaitAsync(Window + TimeSpan.FromSeconds(20));
            left.Add(DateTime.UtcNow - sigterm);
            await s.ConnectAsync(1);
        })).ToList();
        var heldPoll = poller.GetAsync(new Uri(pipeline.Gateways[0].Http, $"/v1/poll?cursor={(string?)pollStart["cursor"]}"));
        // The poll must be held before the drain starts: one that arrives after it is refused
        // with 503, which is right for a new request but not what this test is about.
        await PipelineTests.WaitUntilAsync(
            async () => (await PrometheusText.ScrapeAsync(pipeline.Gateways[0].Http)).Sum("realtime_gateway_connections", ("transport", "longpoll")) >= 1,
            TimeSpan.FromSeconds(10));
        // And a service's publish stream on the draining node, answered so far.
        using var stream = pipeline.PublisherClient(0).PublishStream(auth, deadline: DateTime.UtcNow.AddSeconds(90));
        await stream.RequestStream.WriteAsync(new PublishRequest { Channel = "room:drain-stream", EventType = "n", Payload = ByteString.CopyFromUtf8("1") });
        Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(PublishStreamResponse.OutcomeOneofCase.Result, stream.ResponseStream.Current.OutcomeCase);

        var terminate = pipeline.Gateways[0].Process.TerminateAsync(Window + TimeSpan.FromSeconds(20));

        // The stream ends at once (publish on a new stream elsewhere), not at the end of the window:
        // with UNAVAILABLE, or, when Kestrel's shutdown closes the then idle HTTP/2 connection
        // before the client has read that status, with the connection closed by the server.
        var streamEnded = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => stream.ResponseStream.MoveNext(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(
            streamEnded.StatusCode == Grpc.Core.StatusCode.Unavailable
                || (streamEnded.StatusCode == Grpc.Core.StatusCode.Internal && streamEnded.Status.Detail.Contains("server closed the connection", StringComparison.Ordinal)),
            $"the stream ended with {streamEnded.Status}");

        // The held poll is answered at once (nothing new: 204), not at the end of its hold.
        using (var answered = await heldPoll.WaitAsync(TimeSpan.FromSeconds(5)))
        {
            Assert.Equal(System.Net.HttpStatusCode.NoContent, answered.StatusCode);
        }

        // The SSE stream is told to reconnect, then ends; it resumes on the other node from its cursor.
        var sseReceived = new List<int>();
        var reconnectHint = false;
        while (await sse.NextAsync(Window + TimeSpan.FromSeconds(5)) is { } message)
        {
            if (message.Data is null)
            {
                continue;
            }

            var frame = message.Json;
            reconnectHint |= (string?)frame["type"] == "reconnect" && (long)frame["delayMs"]! >= 0;
            if ((string?)frame["type"] == "event")
            {
                sseReceived.Add((int)frame["data"]!);
            }
        }

        Assert.True(reconnectHint, "the SSE stream ended without a reconnect frame");
        await sse.DisposeAsync();
        sse = await SseClient.OpenAsync(pipeline.Gateways[1].Http, $"channels={channels[0]}", sseToken, lastEventId: sse.LastEventId);

        // Not ready any more, at once (the probe sees 503 or a refused connection).
        await PipelineTests.WaitUntilAsync(async () => !await IsReadyAsync(pipeline.Gateways[0].Http), TimeSpan.FromSeconds(2));

        await Task.WhenAll(moves);
        await terminate;
        await stop.CancelAsync();
        await flow.WaitAsync(TimeSpan.FromSeconds(30));

        var times = left.Order().ToList();
        output.WriteLine($"left after: first {times[0].TotalSeconds:F1} s, median {times[times.Count / 2].TotalSeconds:F1} s, last {times[^1].TotalSeconds:F1} s; exit code {pipeline.Gateways[0].Process.ExitCode}");
        Assert.Equal(0, pipeline.Gateways[0].Process.ExitCode);
        Assert.True(times[^1] <= Window + TimeSpan.FromSeconds(2), $"last client left after {times[^1]}");
        // Spread over the window, not all in its first second.
        Assert.True(times.Count(t => t < TimeSpan.FromSeconds(1)) < times.Count / 4, "most clients left in the first second");
        Assert.True(times[times.Count / 2] > TimeSpan.FromSeconds(2), $"median {times[times.Count / 2]}");
        Assert.All(subscribers, s => Assert.Equal(1, s.ReconnectHints));
        Assert.All(subscribers, s => Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, s.LastCloseStatus));

        await PipelineTests.WaitUntilAsync(
            () => Task.FromResult(subscribers.All(s => s.Channels.All(c => audit.Missing(s.Name, c) <= 0))),
            TimeSpan.FromMinutes(1));
        while (sseReceived.Count < publishedOnFirst.Count)
        {
            var frame = await sse.NextFrameAsync("event");
            sseReceived.Add((int)frame["data"]!);
        }

        await sse.DisposeAsync();
        Assert.Equal(publishedOnFirst, sseReceived);

        var report = audit.Report(subscribers.SelectMany(s => s.Channels.Select(c => (s.Name, c))));
        output.WriteLine(report.ToString());
        Assert.Equal(0, report.Lost);
        Assert.Equal(0, report.Duplicates);
        Assert.Equal(0, report.OutOfOrder);
        Assert.Equal(0, report.SeqHoles);
        Assert.All(subscribers, s => Assert.Equal(0, s.Resyncs));
        foreach (var subscriber in subscribers)
        {
            await subscriber.DisposeAsync();
        }
    }

    private static async Task<bool> IsReadyAsync(Uri http)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        try
        {
            return (await client.GetAsync(new Uri(http, "/readyz"))).IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or WebSocketException)
        {
            return false;
        }
    }
}
