using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Realtime.Bench.Targets;

namespace Realtime.Bench.Workloads;

/// <summary>W2: one channel, many subscribers spread over the target's server instances, a steady publish rate.</summary>
internal static class Broadcast
{
    public static async Task<JsonObject> RunAsync(IBenchTarget target, int subscribers, int ratePerSecond, TimeSpan duration, CancellationToken cancellationToken)
    {
        var channel = $"room:bench-{Guid.NewGuid():N}";
        var total = (int)(ratePerSecond * duration.TotalSeconds);
        var ledger = new DeliveryLedger(subscribers, total);
        await WarmUp.RunAsync(target, reconnect: false, cancellationToken);
        var measurement = new Measurement(target.Processes);
        await using var clients = new SubscriberSet();
        var connectClock = Stopwatch.StartNew();
        await clients.ConnectAsync(target, subscribers, _ => channel, channels: 1, measurement, ledger, cancellationToken);
        var connectSeconds = connectClock.Elapsed.TotalSeconds;
        measurement.Start();
        await Pacer.RunAsync(total, ratePerSecond, n => target.PublishAsync(channel, n, cancellationToken), cancellationToken);
        var expected = (long)total * subscribers;
        await Settle.UntilAsync(() => ledger.Delivered >= expected, TimeSpan.FromSeconds(15), cancellationToken);
        return measurement.Finish("W2", target.Name, new JsonObject
        {
            ["subscribers"] = subscribers,
            ["eventsPerSecond"] = ratePerSecond,
            ["seconds"] = duration.TotalSeconds,
            ["connectSeconds"] = Math.Round(connectSeconds, 2),
            ["connectRatePerSecond"] = Math.Round(subscribers / connectSeconds, 0),
        }, expected, ledger);
    }
}

/// <summary>Source addresses across 127.0.0.2-127.0.0.254: the ephemeral port range is per source address.</summary>
internal static class SourceAddresses
{
    public static IPAddress For(int index) => new([127, 0, 0, (byte)(2 + (index % 253))]);
}

/// <summary>
/// Publishes <c>total</c> events at a steady rate, each at its due time; up to 64 publishes are in
/// flight so a slow acknowledgement does not lower the offered rate (the ledger does not need order).
/// </summary>
internal static class Pacer
{
    public static async Task RunAsync(int total, int ratePerSecond, Func<long, Task> publish, CancellationToken cancellationToken)
    {
        using var inFlight = new SemaphoreSlim(64);
        var pending = new List<Task>(total);
        var interval = TimeSpan.FromSeconds(1.0 / ratePerSecond);
        var started = Stopwatch.GetTimestamp();
        for (var n = 0; n < total; n++)
        {
            var wait = TimeSpan.FromTicks(interval.Ticks * n) - Stopwatch.GetElapsedTime(started);
            if (wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait, cancellationToken);
            }

            await inFlight.WaitAsync(cancellationToken);
            pending.Add(PublishOneAsync(n));
        }

        await Task.WhenAll(pending);

        async Task PublishOneAsync(long n)
        {
            try
            {
                await publish(n);
            }
            finally
            {
                inFlight.Release();
            }
        }
    }
}

/// <summary>Bounded waiting for the last deliveries.</summary>
internal static class Settle
{
    public static async Task<bool> UntilAsync(Func<bool> done, TimeSpan limit, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            if (clock.Elapsed > limit)
            {
                return false;
            }

            await Task.Delay(20, cancellationToken);
        }

        return true;
    }
}
