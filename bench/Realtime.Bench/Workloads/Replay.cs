using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Net.Client;
using Realtime.Bench.Targets;
using Realtime.Contracts.V1;

namespace Realtime.Bench.Workloads;

/// <summary>W6 (ours only): a client that missed N events reconnects with its position and catches up.</summary>
internal static class Replay
{
    // warmUp: catch up unreported first, until two catch-ups in a row are within 10% of each
    // other (at most five). A full run starts the stack afresh, and a gateway in service has run
    // its replay path many times: from a fresh stack the first catch-up took 723 ms, the next 415.
    public static async Task<JsonObject> RunAsync(string token, int events, bool warmUp, CancellationToken cancellationToken)
    {
        var previous = double.MaxValue;
        for (var round = 1; warmUp && round <= 5; round++)
        {
            var milliseconds = (double)(await RunOnceAsync(token, events, cancellationToken))["catchUpMilliseconds"]!;
            Console.WriteLine($"W6 warm-up {round} (not reported): caught up in {milliseconds} ms");
            if (WarmUp.Settled(previous, milliseconds))
            {
                break;
            }

            previous = milliseconds;
        }

        return await RunOnceAsync(token, events, cancellationToken);
    }

    private static async Task<JsonObject> RunOnceAsync(string token, int events, CancellationToken cancellationToken)
    {
        var channel = $"room:bench-{Guid.NewGuid():N}";
        var position = await History.HeadAsync(token, channel, cancellationToken);
        using var grpc = GrpcChannel.ForAddress("http://127.0.0.1:9080");
        var publisher = new Publisher.PublisherClient(grpc);
        var auth = new Grpc.Core.Metadata { { "authorization", $"Bearer {token}" } };
        for (var start = 0; start < events; start += 500)
        {
            var batch = new PublishBatchRequest();
            for (var n = start; n < Math.Min(events, start + 500); n++)
            {
                batch.Events.Add(new PublishRequest { Channel = channel, EventType = "bench", Payload = ByteString.CopyFromUtf8($"{{\"t\":0,\"n\":{n}}}") });
            }

            await publisher.PublishBatchAsync(batch, auth, cancellationToken: cancellationToken);
        }

        // Everything is sequenced before the client comes back.
        var sequencing = Stopwatch.StartNew();
        while ((await History.HeadAsync(token, channel, cancellationToken)).Seq < position.Seq + (ulong)events)
        {
            if (sequencing.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"the {events} published events were not all sequenced within 60 s");
            }

            await Task.Delay(100, cancellationToken);
        }

        var measurement = new Measurement(ProcessSample.FindStack);
        measurement.Start();
        var ledger = new DeliveryLedger(1, events);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var clock = Stopwatch.StartNew();
        await using var client = await RealtimeSubscriber.ConnectAsync(RealtimeTarget.Gateways[1], token, IPAddress.Loopback, channel, (_, n) =>
        {
            ledger.Record(0, n);
            if (ledger.Delivered == events)
            {
                done.TrySetResult();
            }
        }, cancellationToken, since: position);
        await done.Task.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
        var caughtUp = clock.Elapsed;
        var report = measurement.Finish("W6", "realtime", new JsonObject { ["missedEvents"] = events }, events, ledger.Delivered, withLatency: false);
        report["catchUpMilliseconds"] = Math.Round(caughtUp.TotalMilliseconds, 1);
        return report;
    }
}

/// <summary>A channel's head position, from the gateway's history endpoint.</summary>
internal static class History
{
    private static readonly HttpClient Http = new();

    public static async Task<(string Epoch, ulong Seq)> HeadAsync(string token, string channel, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"http://127.0.0.1:8080/v1/channels/{channel}/events?limit=1&since=0"));
        request.Headers.Authorization = new("Bearer", token);
        using var response = await Http.SendAsync(request, cancellationToken);
        response.EnsureSuccessStatusCode();
        var page = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken))!;
        return ((string)page["epoch"]!, (ulong)page["seq"]!);
    }
}
