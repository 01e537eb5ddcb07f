using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Realtime.Gateway.Connections;

/// <summary>
/// WebSocket pings for every connection of the node from one sweep: a client that has sent
/// nothing for <see cref="GatewayOptions.KeepAliveInterval"/> gets a ping, and one that answers
/// nothing within <see cref="GatewayOptions.KeepAliveTimeout"/> after it is aborted, which ends
/// its session and releases its routes (docs/protocol.md, Heartbeats).
/// </summary>
/// <remarks>
/// The sweep runs every quarter of the shorter of the two (at most once a second), so a ping or a
/// dead peer is acted on at most that late. It replaces the WebSocket's built-in keep-alive,
/// which needs a timer per connection (see <see cref="KeepAliveStream"/>).
/// </remarks>
internal sealed partial class WebSocketKeepAlive(IOptions<GatewayOptions> options, ILogger<WebSocketKeepAlive> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<Tracked, byte> _connections = new(ReferenceEqualityComparer.Instance);
    private readonly long _intervalMs = (long)options.Value.KeepAliveInterval.TotalMilliseconds;
    private readonly long _timeoutMs = (long)options.Value.KeepAliveTimeout.TotalMilliseconds;

    /// <summary>Keeps <paramref name="connection"/> alive through <paramref name="stream"/> until the returned handle is disposed.</summary>
    public IDisposable Track(KeepAliveStream stream, WebSocketConnection connection)
    {
        var tracked = new Tracked(this, stream, connection);
        _connections.TryAdd(tracked, 0);
        return tracked;
    }

    /// <summary>One pass over every connection.</summary>
    /// <returns>How many were found dead (and cut).</returns>
    private int Sweep(long now)
    {
        var dead = 0;
        foreach (var tracked in _connections.Keys)
        {
            if (tracked.Stream.Check(now, _intervalMs, _timeoutMs) == KeepAliveStream.Liveness.Dead)
            {
                dead++;
                _connections.TryRemove(tracked, out _);
                // Aborting ends the receive loop, and with it the session and its routes.
                tracked.Connection.AbortUnresponsive();
            }
        }

        return dead;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(SweepPeriod(options.Value.KeepAliveInterval, options.Value.KeepAliveTimeout));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var dead = Sweep(Environment.TickCount64);
                if (dead > 0)
                {
                    LogDead(logger, dead, options.Value.KeepAliveTimeout);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The node is stopping.
        }
    }

    internal static TimeSpan SweepPeriod(TimeSpan interval, TimeSpan timeout)
    {
        var quarter = (interval < timeout ? interval : timeout) / 4;
        return quarter < TimeSpan.FromMilliseconds(50) ? TimeSpan.FromMilliseconds(50) : quarter > TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : quarter;
    }

    [LoggerMessage(EventId = 5010, Level = LogLevel.Information, Message = "Closed {Count} WebSocket connections that answered no ping within {Timeout}")]
    private static partial void LogDead(ILogger logger, int count, TimeSpan timeout);

    private sealed class Tracked(WebSocketKeepAlive owner, KeepAliveStream stream, WebSocketConnection connection) : IDisposable
    {
        public KeepAliveStream Stream { get; } = stream;

        public WebSocketConnection Connection { get; } = connection;

        public void Dispose() => owner._connections.TryRemove(this, out _);
    }
}

/// <summary>
/// Stands in for the server's upgrade on <c>/ws</c> so the WebSocket is built over a
/// <see cref="KeepAliveStream"/>; the endpoint finds the stream here after the upgrade.
/// </summary>
internal sealed class KeepAliveUpgradeFeature(IHttpUpgradeFeature inner) : IHttpUpgradeFeature, Upgrade.IKeepAliveStreamFeature
{
    public bool IsUpgradableRequest => inner.IsUpgradableRequest;

    /// <summary>The upgraded stream, once <see cref="UpgradeAsync"/> ran.</summary>
    public KeepAliveStream? Stream { get; private set; }

    public async Task<Stream> UpgradeAsync()
    {
        Stream = new KeepAliveStream(await inner.UpgradeAsync());
        return Stream;
    }

    /// <summary>
    /// Must run before <c>UseWebSockets</c>, which takes the upgrade feature when a request arrives.
    /// </summary>
    public static IApplicationBuilder UseFor(IApplicationBuilder app, PathString path) => app.Use((context, next) =>
    {
        if (context.Request.Path.StartsWithSegments(path) && context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } upgrade)
        {
            var feature = new KeepAliveUpgradeFeature(upgrade);
            context.Features.Set<IHttpUpgradeFeature>(feature);
            context.Features.Set<Upgrade.IKeepAliveStreamFeature>(feature);
        }

        return next(context);
    });
}
