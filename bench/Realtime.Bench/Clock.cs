namespace Realtime.Bench;

/// <summary>The publish-time clock every target's payload carries: wall time in Unix microseconds (one machine, one clock).</summary>
internal static class Clock
{
    public static long NowMicros() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;
}

/// <summary>Reads the bench payload's numbers out of a frame without parsing it.</summary>
internal static class PayloadScan
{
    /// <summary>The non-negative integer right after the first <paramref name="key"/> (e.g. <c>"t":</c>), or 0.</summary>
    public static long Number(ReadOnlySpan<byte> frame, ReadOnlySpan<byte> key)
    {
        var at = frame.IndexOf(key);
        if (at < 0)
        {
            return 0;
        }

        long value = 0;
        for (var k = at + key.Length; k < frame.Length && frame[k] is >= (byte)'0' and <= (byte)'9'; k++)
        {
            value = (value * 10) + (frame[k] - '0');
        }

        return value;
    }
}
