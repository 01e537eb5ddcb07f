using System.Diagnostics;
using System.Text.Json.Nodes;
using Realtime.Bench.Targets;

namespace Realtime.Bench.Workloads;

/// <summary>
/// W4: every client drops at once (no close handshake) and reconnects at once, resuming with
/// its position where the target has positions, while events keep flowing: how long until 95%
/// and 100% are back, how many handshakes failed on the way, and what was lost.
/// </summary>
internal static class ReconnectStorm
{
    private const int Channels = 10;
    private static readonly int[] ReportedPercentiles = [1, 10, 25, 50, 75, 90];

    public static async Task<JsonObject> RunAsync(IBenchTarget target, int clientCount, int ratePerSecond, TimeSpan duration, CancellationToken cancellationToken)
    {
        var prefix = $"room:w4-{Guid.NewGuid():N}-";
        var total = (int)(ratePerSecond * duration.TotalSeconds);
        var perChannel = (total + Channels - 1) / Channels;
        var ledger = new DeliveryLedger(clientCount, perChannel);
        await WarmUp.RunAsync(target, reconnect: true, cancellationToken);
        var measurement = new Measurement(target.Processes);
        await using var set = new SubscriberSet();
        await set.ConnectAsync(target, clientCount, i => prefix + (i % Channels), Channels, measurement, ledger, cancellationToken);
        var clients = set.Clients;
        measurement.Start();
        var publishing = Pacer.RunAsync(total, ratePerSecond, n => target.PublishAsync(prefix + (n % Channels), n, cancellationToken), cancellationToken);
        await Task.Delay(duration / 3, cancellationToken);

        foreach (var client in clients)
        {
            client.Abort();
        }

        var storm = Stopwatch.StartNew();
        var failedHandshakes = 0L;
        var back = new double[clientCount];
        await Task.WhenAll(clients.Select(async (client, i) =>
        {
            while (true)
            {
                try
                {
                    await client.ReconnectAsync(cancellationToken);
                    back[i] = storm.Elapsed.TotalSeconds;
                    return;
                }
                catch (Exception e) when (e is System.Net.WebSockets.WebSocketException or HttpRequestException or TimeoutException or IOException)
                {
                    // Refused (admission control's 503, a full accept queue) or cut: back off and try again, as a client would.
                    Interlocked.Increment(ref failedHandshakes);
                    await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(100, 600)), cancellationToken);
                }
            }
        }));

        await publishing;
        var expected = (long)perChannel * clientCount;
        await Settle.UntilAsync(() => ledger.Delivered >= expected, TimeSpan.FromSeconds(15), cancellationToken);
        Array.Sort(back);
        var report = measurement.Finish("W4", target.Name, new JsonObject
        {
            ["clients"] = clientCount,
            ["channels"] = Channels,
            ["eventsPerSecond"] = ratePerSecond,
            ["seconds"] = duration.TotalSeconds,
        }, expected, ledger);
        report["reconnectedPercentilesSeconds"] = new JsonArray([.. ReportedPercentiles.Select(p => (JsonNode)new JsonArray(p, Math.Round(back[(int)Math.Ceiling(clientCount * p / 100.0) - 1], 3)))]);
        report["reconnected95PercentSeconds"] = Math.Round(back[(int)Math.Ceiling(clientCount * 0.95) - 1], 3);
        report["reconnected100PercentSeconds"] = Math.Round(back[^1], 3);
        report["failedHandshakes"] = failedHandshakes;
        return report;
    }
}
