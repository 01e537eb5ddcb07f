using Realtime.Bench.Targets;

namespace Realtime.Bench.Workloads;

/// <summary>
/// An unmeasured prelude to W2-W4, the same for every target. A full run starts each system
/// afresh (so no run pays for what an earlier one left behind), and a server in service is warm:
/// its publish, delivery and reconnect paths compiled and optimised, its pools grown. Without
/// this, the first seconds of a measured phase would time the JIT.
/// </summary>
internal static class WarmUp
{
    private const int Clients = 100;
    private const int Channels = 10;
    private const int Events = 2_000;
    private const int RatePerSecond = 1_000;
    private const int Reconnects = 3;

    /// <summary>Subscriber indexes above any a workload uses: their own subjects and tokens.</summary>
    private const int FirstIndex = 1_000_000;

    public static async Task RunAsync(IBenchTarget target, bool reconnect, CancellationToken cancellationToken)
    {
        var prefix = $"room:warmup-{Guid.NewGuid():N}-";
        var delivered = 0L;
        var clients = new List<IBenchSubscriber>(Clients);
        try
        {
            for (var i = 0; i < Clients; i++)
            {
                clients.Add(await target.SubscribeAsync(FirstIndex + i, i % target.Instances, SourceAddresses.For(i), prefix + (i % Channels), (_, _) => Interlocked.Increment(ref delivered), cancellationToken));
            }

            // Reconnects while events flow: ours then resumes with replay, as in W4.
            var publishing = PublishAsync(target, prefix, cancellationToken);
            for (var round = 0; reconnect && round < Reconnects; round++)
            {
                foreach (var client in clients)
                {
                    client.Abort();
                }

                await Task.WhenAll(clients.Select(c => c.ReconnectAsync(cancellationToken)));
            }

            await publishing;

            // Every client gets every event of its channel once: Events × Clients / Channels. A
            // peer loses what was published while its clients reconnected, so with reconnects the
            // wait is short and not reaching the count is expected.
            var expected = (long)Events * (Clients / Channels);
            await Settle.UntilAsync(() => Interlocked.Read(ref delivered) >= expected, TimeSpan.FromSeconds(reconnect ? 3 : 15), cancellationToken);
        }
        finally
        {
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
        }
    }

    /// <summary>
    /// Whether a warm-up that repeats a measurement has settled: this round within 10% of the one
    /// before (W5's fanout CPU per event, W6's catch-up time).
    /// </summary>
    public static bool Settled(double previous, double current) => Math.Abs(current - previous) <= 0.1 * previous;

    private static Task PublishAsync(IBenchTarget target, string prefix, CancellationToken cancellationToken) =>
        Pacer.RunAsync(Events, RatePerSecond, n => target.PublishAsync(prefix + (n % Channels), n, cancellationToken), cancellationToken);
}
