namespace Realtime.Bench.Targets;

/// <summary>
/// A peer's subscriber: one connection that subscribed to its channel. Peers have no positions,
/// so a reconnect is a new connection that subscribes again (what was published meanwhile is
/// lost to it, and counted so).
/// </summary>
internal sealed class PeerSubscriber : IBenchSubscriber
{
    /// <summary>Opens a connection and starts its subscribe: the connection, how to abort it, and the subscribe's completion.</summary>
    public delegate Task<(IAsyncDisposable Connection, Action Abort, Task Subscribed)> Connect(CancellationToken cancellationToken);

    private readonly Connect _connect;
    private (IAsyncDisposable Connection, Action Abort)? _current;

    private PeerSubscriber(Connect connect) => _connect = connect;

    public static async Task<PeerSubscriber> ConnectAsync(Connect connect, CancellationToken cancellationToken)
    {
        var subscriber = new PeerSubscriber(connect);
        await subscriber.SubscribeAsync(cancellationToken);
        return subscriber;
    }

    public void Abort() => _current?.Abort();

    public async Task ReconnectAsync(CancellationToken cancellationToken)
    {
        if (_current is { } old)
        {
            _current = null;
            await old.Connection.DisposeAsync();
        }

        await SubscribeAsync(cancellationToken);
    }

    public ValueTask DisposeAsync() => _current?.Connection.DisposeAsync() ?? ValueTask.CompletedTask;

    private async Task SubscribeAsync(CancellationToken cancellationToken)
    {
        var (connection, abort, subscribed) = await _connect(cancellationToken);
        try
        {
            await subscribed;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        _current = (connection, abort);
    }
}
