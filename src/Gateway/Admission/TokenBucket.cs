namespace Realtime.Gateway.Admission;

/// <summary>
/// A token bucket: <see cref="Rate"/> tokens per second up to <see cref="Burst"/>. Not thread-safe
/// by itself; <see cref="ConcurrentTokenBucket"/> wraps it for shared use.
/// </summary>
public struct TokenBucket
{
    private double _tokens;
    private long _lastTicks;

    public TokenBucket(double rate, double burst, long nowTicks)
    {
        Rate = rate;
        Burst = Math.Max(1, burst);
        _tokens = Burst;
        _lastTicks = nowTicks;
    }

    public double Rate { get; }

    public double Burst { get; }

    /// <summary>Takes a token if one is there; otherwise says how long until one will be.</summary>
    public bool TryTake(long nowTicks, long ticksPerSecond, out TimeSpan retryAfter)
    {
        var elapsed = (double)(nowTicks - _lastTicks) / ticksPerSecond;
        _lastTicks = nowTicks;
        _tokens = Math.Min(Burst, _tokens + (elapsed * Rate));
        if (_tokens >= 1)
        {
            _tokens -= 1;
            retryAfter = TimeSpan.Zero;
            return true;
        }

        // A millisecond of slack: clients' timers may fire a little early, and a retry right at the
        // boundary should find its token.
        retryAfter = Rate <= 0 ? TimeSpan.MaxValue : TimeSpan.FromSeconds((1 - _tokens) / Rate) + TimeSpan.FromMilliseconds(1);
        return false;
    }
}

/// <summary>A <see cref="TokenBucket"/> shared by many threads.</summary>
public sealed class ConcurrentTokenBucket(double rate, double burst, TimeProvider time)
{
    private readonly Lock _gate = new();
    private TokenBucket _bucket = new(rate, burst, time.GetTimestamp());

    public bool TryTake(out TimeSpan retryAfter)
    {
        lock (_gate)
        {
            return _bucket.TryTake(time.GetTimestamp(), time.TimestampFrequency, out retryAfter);
        }
    }
}
