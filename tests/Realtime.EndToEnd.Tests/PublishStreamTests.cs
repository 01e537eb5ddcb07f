using Google.Protobuf;
using Grpc.Core;
using Realtime.Contracts.V1;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>The gRPC <c>Publisher.PublishStream</c> call against the real pipeline: order, one answer per event, and its end.</summary>
public sealed class PublishStreamTests(SharedPipeline shared, ITestOutputHelper output) : IClassFixture<SharedPipeline>
{
    private LocalPipeline Stack => shared.Stack;

    [Fact]
    public async Task A_stream_publishes_in_order_and_answers_each_event_in_order_refusing_bad_events_alone()
    {
        const int Events = 400;
        var channel = $"room:{Guid.NewGuid():N}";
        await using var subscriber = await Stack.ConnectAsync(1, "stream-reader", "room:*");
        await subscriber.SubscribeAsync(channel);

        // Every event is valid but these: each is refused by itself, and the stream goes on.
        var refusals = new Dictionary<int, (PublishRequest Request, StatusCode Code)>
        {
            [50] = (Event("room:not a channel", 50), StatusCode.InvalidArgument),
            [100] = (Event("secret:x", 100), StatusCode.PermissionDenied),
            [150] = (new PublishRequest { Channel = channel, EventType = "bench", Payload = ByteString.CopyFromUtf8("{not json") }, StatusCode.InvalidArgument),
            [200] = (new PublishRequest { Channel = channel, EventType = string.Empty, Payload = ByteString.CopyFromUtf8("1") }, StatusCode.InvalidArgument),
        };
        var requests = Enumerable.Range(0, Events).Select(i => refusals.TryGetValue(i, out var bad) ? bad.Request : Event(channel, i)).ToList();

        // A retry of event 10 (same idempotency key) answers with event 10's result and publishes nothing.
        requests[10].IdempotencyKey = "k-10";
        requests[300] = Event(channel, 10);
        requests[300].IdempotencyKey = "k-10";

        var metricsBefore = await PrometheusText.ScrapeAsync(Stack.Gateways[0].Http);
        var refusedBefore = metricsBefore.Sum("realtime_gateway_publishes_total", ("outcome", "refused"));
        var streamsBefore = metricsBefore.Sum("realtime_gateway_publish_streams");

        using var call = Stack.PublisherClient(0).PublishStream(Stack.ServiceAuth("room:*"), deadline: DateTime.UtcNow.AddSeconds(60));
        var answers = ReadAllAsync(call.ResponseStream);
        foreach (var request in requests)
        {
            await call.RequestStream.WriteAsync(request);
        }

        // Counted as open (it cannot end before its request stream does).
        await PipelineTests.WaitUntilAsync(
            async () => (await PrometheusText.ScrapeAsync(Stack.Gateways[0].Http)).Sum("realtime_gateway_publish_streams") == streamsBefore + 1,
            TimeSpan.FromSeconds(10));
        await call.RequestStream.CompleteAsync();
        var responses = await answers.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(Events, responses.Count);
        foreach (var (index, (_, code)) in refusals)
        {
            Assert.Equal(PublishStreamResponse.OutcomeOneofCase.Error, responses[index].OutcomeCase);
            Assert.Equal((int)code, responses[index].Error.Code);
            Assert.NotEmpty(responses[index].Error.Message);
        }

        var published = Enumerable.Range(0, Events).Where(i => !refusals.ContainsKey(i) && i != 300).ToList();
        Assert.All(published, i => Assert.Equal(PublishStreamResponse.OutcomeOneofCase.Result, responses[i].OutcomeCase));
        Assert.Equal(responses[10].Result.EventId, responses[300].Result.EventId);

        // One channel is one partition: its offsets grow in request order.
        var offsets = published.Select(i => responses[i].Result.Position.Offset).ToList();
        Assert.Equal(offsets.Order(), offsets);
        Assert.Equal(published.Count, offsets.Distinct().Count());

        var delivered = await subscriber.TakeEventsAsync(published.Count, TimeSpan.FromSeconds(30));
        Assert.Equal(published, delivered.Select(e => (int)e["data"]!));
        Assert.Equal(Enumerable.Range(1, published.Count).Select(i => (ulong)i), delivered.Select(e => (ulong)e["seq"]!));
        // The refusals are counted, and the stream is closed.
        await PipelineTests.WaitUntilAsync(
            async () =>
            {
                var metrics = await PrometheusText.ScrapeAsync(Stack.Gateways[0].Http);
                return metrics.Sum("realtime_gateway_publishes_total", ("outcome", "refused")) == refusedBefore + refusals.Count
                    && metrics.Sum("realtime_gateway_publish_streams") == streamsBefore;
            },
            TimeSpan.FromSeconds(10));
        output.WriteLine($"{Events} requests: {published.Count} published in order, {refusals.Count} refused alone, 1 retry answered from its key");
    }

    [Fact]
    public async Task A_stream_without_a_valid_token_is_refused_before_it_reads_anything()
    {
        var publisher = Stack.PublisherClient(0);
        foreach (var headers in new[] { new Metadata(), new Metadata { { "authorization", "Bearer abc.def.ghi" } } })
        {
            using var call = publisher.PublishStream(headers, deadline: DateTime.UtcNow.AddSeconds(20));
            var refused = await Assert.ThrowsAsync<RpcException>(() => ReadAllAsync(call.ResponseStream));
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        }
    }

    [Fact]
    public async Task A_stream_ends_with_unauthenticated_once_its_token_expires_after_answering_what_it_read()
    {
        var channel = $"room:{Guid.NewGuid():N}";
        await using var subscriber = await Stack.ConnectAsync(1, "expiry-reader", "room:*");
        await subscriber.SubscribeAsync(channel);
        var token = Stack.TokenWith("short-lived-service", ["room:*"], TimeSpan.FromSeconds(3));
        using var call = Stack.PublisherClient(0).PublishStream(new Metadata { { "authorization", $"Bearer {token}" } }, deadline: DateTime.UtcNow.AddSeconds(30));
        var answers = ReadAllAsync(call.ResponseStream);

        // An event every 100 ms until the gateway ends the call (bounded: 200 events, 20 s).
        var sent = 0;
        while (sent < 200 && !answers.IsCompleted)
        {
            try
            {
                await call.RequestStream.WriteAsync(Event(channel, sent));
                sent++;
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException)
            {
                break; // the call has ended
            }

            await Task.WhenAny(answers, Task.Delay(100, CancellationToken.None));
        }

        var ended = await Assert.ThrowsAsync<EndedWithResponses>(() => answers.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(StatusCode.Unauthenticated, ended.Status.StatusCode);
        Assert.Contains("Expired", ended.Status.Detail, StringComparison.Ordinal);
        Assert.InRange(ended.Responses.Count, 1, sent);
        Assert.All(ended.Responses, r => Assert.Equal(PublishStreamResponse.OutcomeOneofCase.Result, r.OutcomeCase));

        // Every answered event was published, in order; the call ended before the next one was.
        var delivered = await subscriber.TakeEventsAsync(ended.Responses.Count, TimeSpan.FromSeconds(20));
        Assert.Equal(Enumerable.Range(0, ended.Responses.Count), delivered.Select(e => (int)e["data"]!));
        output.WriteLine($"sent {sent}, answered {ended.Responses.Count} before the token expired");
    }

    /// <summary>An event whose payload is <paramref name="n"/>, so a subscriber can check the order.</summary>
    internal static PublishRequest Event(string channel, int n) =>
        new() { Channel = channel, EventType = "stream.test", Payload = ByteString.CopyFromUtf8(n.ToString(System.Globalization.CultureInfo.InvariantCulture)) };

    /// <summary>Every response until the call ends; a call that ends with a status other than OK throws <see cref="EndedWithResponses"/> (or, with none, the <see cref="RpcException"/>).</summary>
    internal static async Task<List<PublishStreamResponse>> ReadAllAsync(IAsyncStreamReader<PublishStreamResponse> responses)
    {
        var all = new List<PublishStreamResponse>();
        try
        {
            await foreach (var response in responses.ReadAllAsync())
            {
                all.Add(response);
            }
        }
        catch (RpcException e) when (all.Count > 0)
        {
            throw new EndedWithResponses(e.Status, all);
        }

        return all;
    }

    internal sealed class EndedWithResponses(Status status, List<PublishStreamResponse> responses) : Exception(status.Detail)
    {
        public Status Status { get; } = status;

        public List<PublishStreamResponse> Responses { get; } = responses;
    }
}
