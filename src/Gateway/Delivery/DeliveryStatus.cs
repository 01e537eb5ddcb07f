namespace Realtime.Gateway.Delivery;

/// <summary>What the readiness probe needs to know about the delivery consumer.</summary>
internal sealed class DeliveryStatus
{
    private int _assignedPartitions;
    private long _eventsDelivered;

    public int AssignedPartitions => Volatile.Read(ref _assignedPartitions);

    public long EventsDelivered => Interlocked.Read(ref _eventsDelivered);

    public void SetAssigned(int partitions) => Volatile.Write(ref _assignedPartitions, partitions);

    public void RecordDelivered() => Interlocked.Increment(ref _eventsDelivered);
}
