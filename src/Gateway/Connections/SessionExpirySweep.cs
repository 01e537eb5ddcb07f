namespace Realtime.Gateway.Connections;

/// <summary>
/// Token expiry for every streaming session of the node from one sweep: each is warned
/// (<c>auth.expiring</c>) within <c>Auth:ExpiryWarning</c> of its token's expiry and closed
/// (4001) once it passed, at most <see cref="Period"/> late.
/// </summary>
/// <remarks>
/// A timer per session (a <c>Task.Delay</c> loop) held about 500 bytes for each idle connection
/// (its state machine, delay promise, timer and cancellation registration; docs/benchmarks.md,
/// change 23); a pass over 10,000 sessions costs tens of microseconds.
/// </remarks>
internal sealed class SessionExpirySweep(SessionRegistry sessions, TimeProvider time) : BackgroundService
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                Sweep(time.GetUtcNow());
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The node is stopping.
        }
    }

    internal void Sweep(DateTimeOffset now)
    {
        foreach (var session in sessions.Enumerate())
        {
            if (session is ClientSession streaming)
            {
                streaming.CheckExpiry(now);
            }
        }
    }
}
