using Realtime.Fanout.Ingress;

namespace Realtime.Fanout.Tests.Ingress;

public sealed class BatchLimitTests
{
    [Theory]
    [InlineData(0, 0)] // nothing learned yet
    [InlineData(1_000, 0)] // no routes
    [InlineData(1_000, 1_000)] // one target per event
    [InlineData(5_000, 50_000)] // 10 targets: 50,000 deliveries, within the bound
    public void Takes_the_record_limit_while_the_fan_out_stays_within_the_delivery_bound(int events, long deliveries) =>
        Assert.Equal(5_000, BatchLimit.Next(events, deliveries, maxBatchSize: 5_000, maxBatchDeliveries: 100_000));

    [Fact]
    public void A_wide_fan_out_takes_fewer_records_so_that_deliveries_stay_near_the_bound()
    {
        // 100 targets per event: 1,000 records make 100,000 deliveries.
        Assert.Equal(1_000, BatchLimit.Next(5_000, 500_000, maxBatchSize: 5_000, maxBatchDeliveries: 100_000));
        // 30 targets: 3,333 records.
        Assert.Equal(3_333, BatchLimit.Next(200, 6_000, maxBatchSize: 5_000, maxBatchDeliveries: 100_000));
    }

    [Fact]
    public void Never_takes_less_than_one_record()
    {
        Assert.Equal(1, BatchLimit.Next(10, 10_000_000, maxBatchSize: 5_000, maxBatchDeliveries: 100));
    }
}
