using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Realtime.Gateway.Delivery;

/// <summary>
/// Ready means the node can do its job: not draining, its delivery topic assigned, Kafka
/// answering (the lag probe asks it every few seconds) and Redis answering.
/// Served on <c>/readyz</c> and through the gRPC health service.
/// </summary>
internal sealed class GatewayReadiness(
    DeliveryStatus delivery,
    IConnectionMultiplexer redis,
    NodeIdentity node,
    Connections.DrainCoordinator drain,
    Hosting.Telemetry.ConsumerLagReporter lag) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (drain.IsDraining)
        {
            return HealthCheckResult.Unhealthy("draining");
        }

        if (delivery.AssignedPartitions == 0)
        {
            return HealthCheckResult.Unhealthy("delivery topic not assigned");
        }

        if (!lag.KafkaReachable)
        {
            return HealthCheckResult.Unhealthy("kafka unreachable");
        }

        try
        {
            await redis.GetDatabase().PingAsync().WaitAsync(TimeSpan.FromSeconds(2), cancellationToken);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy("redis unreachable");
        }

        return HealthCheckResult.Healthy($"node={node.Id}");
    }
}
