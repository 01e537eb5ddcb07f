using Microsoft.Extensions.Options;
using Realtime.Gateway.Replay;
using StackExchange.Redis;

namespace Realtime.Gateway.Routing;

/// <summary>
/// Keeps this node's liveness key fresh and its routes present. At start it clears routes a
/// previous process left under the same node id (their subscribers are gone) before the node
/// accepts any connection. When Redis loses its data or the connection comes back, every
/// local route is registered again at once.
/// </summary>
internal sealed partial class NodeLivenessService(
    RouteRegistry routes,
    ChannelHub hub,
    ChannelHistory history,
    IConnectionMultiplexer redis,
    IOptions<GatewayOptions> options,
    NodeIdentity node,
    Admission.UserLimits userLimits,
    Connections.SessionRegistry sessions,
    TimeProvider time,
    ILogger<NodeLivenessService> logger) : BackgroundService
{
    private readonly GatewayOptions _options = options.Value;
    private readonly SemaphoreSlim _wake = new(0);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Runs before Kestrel starts listening: no subscriber can register a route that this
        // clean-up would then delete.
        var attempt = 0;
        while (true)
        {
            try
            {
                var removed = await routes.RemoveAllAsync();
                await userLimits.ClearNodeAsync();
                await routes.HeartbeatAsync(_options.LivenessTtl, time.GetUtcNow().ToUnixTimeMilliseconds());
                LogStarted(node.Id, removed);
                break;
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                if (attempt++ % 10 == 0)
                {
                    LogRedisUnavailable(e.Message);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(500), time, cancellationToken);
            }
        }

        redis.ConnectionRestored += OnConnectionRestored;
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var forceReregister = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(_options.HeartbeatInterval, stoppingToken);
                var existed = await routes.HeartbeatAsync(_options.LivenessTtl, time.GetUtcNow().ToUnixTimeMilliseconds(), sessions.Count);
                if (!existed || forceReregister || Interlocked.Exchange(ref _restored, 0) != 0)
                {
                    var channels = hub.RoutedChannels();
                    await routes.AddManyAsync(channels);
                    LogReregistered(channels.Count, existed ? "connection restored" : "liveness key was missing");
                    // Events sequenced while the routes were gone did not come here: fetch them.
                    await hub.CatchUpAsync(channels, history);
                }

                forceReregister = false;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                // Re-register on the first heartbeat that gets through: Redis may have restarted empty.
                forceReregister = true;
                LogHeartbeatFailed(e.Message);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        redis.ConnectionRestored -= OnConnectionRestored;
        await base.StopAsync(cancellationToken);
        try
        {
            // Leaving: stop being a target now rather than when the TTL runs out.
            await routes.MarkDeadAsync().WaitAsync(TimeSpan.FromSeconds(2), cancellationToken);
            await routes.RemoveAllAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
        }
        catch (Exception e) when (e is RedisException or TimeoutException or OperationCanceledException)
        {
            LogHeartbeatFailed(e.Message);
        }
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    private int _restored;

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        Interlocked.Exchange(ref _restored, 1);
        _wake.Release();
    }

    [LoggerMessage(EventId = 2000, Level = LogLevel.Information, Message = "Node {Node} is live; cleared {Removed} stale routes")]
    private partial void LogStarted(string node, int removed);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Registered {Count} routes again ({Reason})")]
    private partial void LogReregistered(int count, string reason);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Liveness heartbeat failed: {Reason}")]
    private partial void LogHeartbeatFailed(string reason);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Redis unavailable at start ({Reason}); retrying")]
    private partial void LogRedisUnavailable(string reason);
}
