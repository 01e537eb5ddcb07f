namespace Realtime.Gateway.Connections;

/// <summary>
/// Graceful drain: when the node is asked to stop (SIGTERM or <c>POST /admin/drain</c>) every
/// client is told to reconnect elsewhere after its own delay, spread over the drain window, so
/// that a deploy moves its clients gradually instead of all at once. Readiness fails at once.
/// </summary>
/// <remarks>
/// One registration on the stopping token for the node, not one per connection (a callback node
/// and a delegate each, held by every idle connection): the drain walks the session registry.
/// A session that starts while the walk runs checks <see cref="IsDraining"/> after it is
/// registered, so none is missed; <see cref="ClientSession.BeginDrain"/> acts once either way.
/// </remarks>
internal sealed class DrainCoordinator
{
    private readonly TimeSpan _window;

    public DrainCoordinator(Microsoft.Extensions.Options.IOptions<GatewayOptions> options, IHostApplicationLifetime lifetime, SessionRegistry sessions)
    {
        _window = options.Value.DrainWindow;
        Draining = lifetime.ApplicationStopping;
        Draining.Register(() =>
        {
            foreach (var session in sessions.Enumerate())
            {
                (session as ClientSession)?.BeginDrain();
            }
        });
    }

    public bool IsDraining => Draining.IsCancellationRequested;

    /// <summary>Cancelled when the drain starts: what holds a client request (a long-poll) lets go then.</summary>
    public CancellationToken Draining { get; }

    /// <summary>When this connection should go: uniformly spread over the first 90% of the window, leaving room to close.</summary>
    public TimeSpan NextDelay() => _window * (0.9 * Random.Shared.NextDouble());
}
