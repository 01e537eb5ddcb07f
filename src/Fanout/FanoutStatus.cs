namespace Realtime.Fanout;

/// <summary>What the health endpoints report about the consume loop. Written by the loop, read by probes.</summary>
internal sealed class FanoutStatus
{
    private int _assignedPartitions;
    private long _recordsRouted;

    public int AssignedPartitions => Volatile.Read(ref _assignedPartitions);

    public long RecordsRouted => Interlocked.Read(ref _recordsRouted);

    /// <summary>True once the instance got its first assignment (possibly of no partition, when there are more instances than partitions).</summary>
    public bool Joined { get; private set; }

    public void SetAssigned(int count)
    {
        Volatile.Write(ref _assignedPartitions, Math.Max(0, count));
        Joined = true;
    }

    public void RecordBatch(int records) => Interlocked.Add(ref _recordsRouted, records);
}
