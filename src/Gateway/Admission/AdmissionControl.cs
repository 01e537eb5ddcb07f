using Microsoft.Extensions.Options;

namespace Realtime.Gateway.Admission;

/// <summary>
/// Decides, before any upgrade, whether a node takes one more connection: at most
/// <see cref="GatewayOptions.MaxConnections"/> at once and <see cref="GatewayOptions.NewConnectionsPerSecond"/>
/// new ones per second (a token bucket, so a reconnect storm is spread instead of absorbed at once).
/// </summary>
internal sealed class AdmissionControl(IOptions<GatewayOptions> options, TimeProvider time)
{
    private readonly int _maxConnections = options.Value.MaxConnections;
    private readonly ConcurrentTokenBucket _newConnections = new(
        options.Value.NewConnectionsPerSecond, options.Value.NewConnectionsPerSecond, time);

    private int _active;

    public int ActiveConnections => Volatile.Read(ref _active);

    /// <summary>A lease to hold for the connection's lifetime, or null with how long the client should wait.</summary>
    /// <param name="retryAfter">When refused, how long the client should wait.</param>
    /// <param name="newConnection">False for a request that holds a slot without being a new connection (a long-poll): it is not rate limited.</param>
    public Lease? TryAdmit(out TimeSpan retryAfter, bool newConnection = true)
    {
        if (Interlocked.Increment(ref _active) > _maxConnections)
        {
            Interlocked.Decrement(ref _active);
            retryAfter = TimeSpan.FromSeconds(1);
            return null;
        }

        retryAfter = TimeSpan.Zero;
        if (newConnection && !_newConnections.TryTake(out retryAfter))
        {
            Interlocked.Decrement(ref _active);
            return null;
        }

        return new Lease(this);
    }

    /// <summary>Releases its admission slot when disposed.</summary>
    public sealed class Lease(AdmissionControl owner) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                Interlocked.Decrement(ref owner._active);
            }
        }
    }
}
