namespace Realtime.Fanout.Ingress;

/// <summary>
/// How many ingress records the next batch may take: <see cref="FanoutOptions.MaxBatchSize"/>,
/// fewer when the last batch fanned out widely, so that a batch's node-topic deliveries (events ×
/// target nodes) stay near <see cref="FanoutOptions.MaxBatchDeliveries"/>.
/// </summary>
/// <remarks>
/// A batch is sequenced while the one before is dispatched; that overlap is what a backlog is
/// routed with. Events for 10 nodes route fastest 5,000 to a batch, events for 100 nodes 1,000
/// (docs/benchmarks.md, change 22): past a point one batch's dispatch is the whole pipeline and
/// nothing overlaps it. The fan-out is only known once a batch is sequenced, so the last batch's
/// stands for the next one's.
/// </remarks>
internal static class BatchLimit
{
    /// <summary>The record limit for the next batch, from what the last one delivered.</summary>
    /// <param name="events">Records the last batch routed.</param>
    /// <param name="deliveries">Node-topic deliveries those records made (each record times its target nodes).</param>
    /// <param name="maxBatchSize">The configured most records per batch.</param>
    /// <param name="maxBatchDeliveries">The configured most deliveries per batch.</param>
    public static int Next(int events, long deliveries, int maxBatchSize, int maxBatchDeliveries)
    {
        if (events <= 0 || deliveries <= 0)
        {
            // Nothing learned (no batch yet, or nothing routed): the record limit is the bound.
            return maxBatchSize;
        }

        var limit = maxBatchDeliveries * (long)events / deliveries;
        return (int)Math.Clamp(limit, 1, maxBatchSize);
    }
}
