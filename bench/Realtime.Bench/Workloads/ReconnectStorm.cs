using System.Diagnostics;
using System.Text.Json.Nodes;
using Realtime.Bench.Targets;

namespace Realtime.Bench.Workloads;

/// <summary>
/// W4: every client drops at once (no close handshake) and reconnects at once, resuming with
/// its position where the target has positions, while events keep flowing: how long until 95%
/// and 100% are back, how many handshakes failed on the way, and what was lost.
/// </summary>
/// <remarks>
/// The full variant drops them several times in one run (storms spread over the run, each begun
/// only once the one before has finished) and reports the median storm: a single storm on two
/// shared cores varies by a quarter either way, which is as much as the targets differ by. What
/// was lost is counted over the whole run, every storm included.
/// </remarks>
internal static class ReconnectStorm
{
    private const int Channels = 10;
    private static readonly int[] ReportedPercentiles = [1, 10, 25, 50, 75, 90];

    public static async Task<JsonObject> RunAsync(IBenchTarget target, int clientCount, int ratePerSecond, TimeSpan duration, int storms, CancellationToken cancellationToken)
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
        var started = Stopwatch.StartNew();
        var publishing = Pacer.RunAsync(total, ratePerSecond, n => target.PublishAsync(prefix + (n % Channels), n, cancellationToken), cancellationToken);

        // Storm k begins (k + 1) / (storms + 2) of the way through the run: one storm at a third
        // of it, as before there were several; the last 2 / (storms + 2) of it is left to settle.
        var results = new List<StormResult>(storms);
        for (var storm = 0; storm < storms; storm++)
        {
            var due = duration * (storm + 1) / (storms + 2);
            if (due > started.Elapsed)
            {
                await Task.Delay(due - started.Elapsed, cancellationToken);
            }

            results.Add(await StormAsync(clients, cancellationToken));
        }

        await publishing;
        var expected = (long)perChannel * clientCount;
        await Settle.UntilAsync(() => ledger.Delivered >= expected, TimeSpan.FromSeconds(15), cancellationToken);
        var report = measurement.Finish("W4", target.Name, new JsonObject
        {
            ["clients"] = clientCount,
            ["channels"] = Channels,
            ["eventsPerSecond"] = ratePerSecond,
            ["seconds"] = duration.TotalSeconds,
            ["storms"] = storms,
        }, expected, ledger);

        // The median storm by its time to 100% stands for the run; every storm is listed.
        results.OrderBy(r => r.Back[^1]).ElementAt(results.Count / 2).WriteTimes(report);
        report["failedHandshakes"] = results.Sum(r => r.FailedHandshakes);
        report["storms"] = new JsonArray([.. results.Select(r =>
        {
            var storm = new JsonObject();
            r.WriteTimes(storm);
            storm["failedHandshakes"] = r.FailedHandshakes;
            return (JsonNode)storm;
        })]);
        return report;
    }

    /// <summary>Drops every client at once and waits until all are back.</summary>
    private static async Task<StormResult> StormAsync(IReadOnlyList<IBenchSubscriber> clients, CancellationToken cancellationToken)
    {
        foreach (var client in clients)
        {
            client.Abort();
        }

        var storm = Stopwatch.StartNew();
        var failedHandshakes = 0L;
        var back = new double[clients.Count];
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

        Array.Sort(back);
        return new StormResult(back, failedHandshakes);
    }

    /// <summary>One storm: when each client was back (sorted, seconds from the drop) and the handshakes that failed.</summary>
    private sealed record StormResult(double[] Back, long FailedHandshakes)
    {
        /// <summary>Seconds until <paramref name="percent"/>% were back, to the millisecond.</summary>
        public double At(int percent) => Math.Round(Back[(int)Math.Ceiling(Back.Length * percent / 100.0) - 1], 3);

        /// <summary>The storm's times, under the names the report reads.</summary>
        public void WriteTimes(JsonObject into)
        {
            into["reconnectedPercentilesSeconds"] = new JsonArray([.. ReportedPercentiles.Select(p => (JsonNode)new JsonArray(p, At(p)))]);
            into["reconnected95PercentSeconds"] = At(95);
            into["reconnected100PercentSeconds"] = At(100);
        }
    }
}
