namespace Realtime.Gateway.Delivery;

/// <summary>What the readiness probe needs to know about the delivery consumer.</summary>
internal sealed class DeliveryStatus
{
    private int _assignedPartitions;

    public int AssignedPartitions => Volatile.Read(ref _assignedPartitions);

    public void SetAssigned(int partitions) => Volatile.Write(ref _assignedPartitions, partitions);
}
