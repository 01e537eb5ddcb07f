using System.Diagnostics;
using System.Text.Json.Nodes;
using Realtime.Bench.Targets;

namespace Realtime.Bench.Workloads;

/// <summary>
/// W3: many channels with one subscriber each (spread over the instances), events spread
/// round-robin over the channels at an aggregate rate: the per-event path, not the fan-out.
/// </summary>
internal static class ManyChannels
{
    public static async Task<JsonObject> RunAsync(IBenchTarget target, int channels, int ratePerSecond, TimeSpan duration, CancellationToken cancellationToken)
    {
        var prefix = $"room:w3-{Guid.NewGuid():N}-";
        var total = (int)(ratePerSecond * duration.TotalSeconds);
        var perChannel = (total + channels - 1) / channels;
        var ledger = new DeliveryLedger(channels, perChannel);
        await WarmUp.RunAsync(target, reconnect: false, cancellationToken);
        var measurement = new Measurement(target.Processes);
        await using var clients = new SubscriberSet();
        var connectClock = Stopwatch.StartNew();
        await clients.ConnectAsync(target, channels, i => prefix + i, channels, measurement, ledger, cancellationToken);
        var connectSeconds = connectClock.Elapsed.TotalSeconds;
        measurement.Start();
        await Pacer.RunAsync(total, ratePerSecond, n => target.PublishAsync(prefix + (n % channels), n, cancellationToken), cancellationToken);
        await Settle.UntilAsync(() => ledger.Delivered >= total, TimeSpan.FromSeconds(15), cancellationToken);
        return measurement.Finish("W3", target.Name, new JsonObject
        {
            ["channels"] = channels,
            ["eventsPerSecond"] = ratePerSecond,
            ["seconds"] = duration.TotalSeconds,
            ["connectSeconds"] = Math.Round(connectSeconds, 2),
        }, total, ledger);
    }
}
