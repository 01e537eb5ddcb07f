namespace Realtime.Fanout.Ingress;

/// <summary>
/// The writes of one node-topic record: the same bytes to each of its target nodes. The ingress
/// records it carries are delivered once every one of those writes is acknowledged.
/// </summary>
/// <remarks>
/// Counting a record's writes here lets <see cref="IngressProgress"/> take one acknowledgement per
/// ingress record instead of one per record and target node: with 10 or 100 target nodes that was
/// 10 or 100 dictionary updates under its lock per routed event. A write that fails is never
/// counted, so its record's offsets stay unacknowledged and the rewind re-reads them.
/// Acknowledgements arrive on the producer's delivery-report thread.
/// </remarks>
internal sealed class NodeWrites(int writes)
{
    private int _pending = writes;

    /// <summary>Counts one acknowledged write.</summary>
    /// <returns>True for the last one: the record reached every target node.</returns>
    public bool Acknowledge() => Interlocked.Decrement(ref _pending) == 0;
}
