using Realtime.Gateway.Admission;

namespace Realtime.Gateway.Tests.Admission;

public sealed class TokenBucketTests
{
    private const long Second = 1_000_000;

    [Fact]
    public void A_full_bucket_allows_a_burst_then_refills_at_its_rate()
    {
        var bucket = new TokenBucket(rate: 10, burst: 10, nowTicks: 0);
        for (var i = 0; i < 10; i++)
        {
            Assert.True(bucket.TryTake(0, Second, out _));
        }

        Assert.False(bucket.TryTake(0, Second, out var wait));
        Assert.InRange(wait, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(102));

        // 0.1 s later exactly one more token.
        Assert.True(bucket.TryTake(Second / 10, Second, out _));
        Assert.False(bucket.TryTake(Second / 10, Second, out _));
    }

    [Fact]
    public void Refill_never_exceeds_the_burst()
    {
        var bucket = new TokenBucket(rate: 5, burst: 5, nowTicks: 0);
        var taken = 0;
        while (bucket.TryTake(100 * Second, Second, out _))
        {
            taken++;
        }

        Assert.Equal(5, taken);
    }
}
