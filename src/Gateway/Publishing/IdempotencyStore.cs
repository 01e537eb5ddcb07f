using System.Globalization;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using StackExchange.Redis;

namespace Realtime.Gateway.Publishing;

/// <summary>
/// Remembers the outcome of publishes that carry an idempotency key (<c>clientMsgId</c>) for
/// <see cref="GatewayOptions.IdempotencyWindow"/>: a retry with the same key, by the same
/// subject, on the same channel gets the original event id and position and publishes nothing.
/// </summary>
/// <remarks>
/// A publish first reserves its key (SET NX). A concurrent retry that finds the reservation
/// still pending waits for its outcome; if the first attempt failed, its reservation is
/// released and the retry publishes.
/// </remarks>
internal sealed class IdempotencyStore(IConnectionMultiplexer redis, PipelineNames names, IOptions<GatewayOptions> options, TimeProvider time)
{
    private const string Pending = "pending";
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);

    private readonly GatewayOptions _options = options.Value;

    /// <summary>Null when this publish now owns the key and must publish; else the earlier outcome.</summary>
    public async Task<PublishResponse?> ReserveAsync(string channel, string subject, string key, CancellationToken cancellationToken)
    {
        var db = redis.GetDatabase();
        var redisKey = (RedisKey)names.IdempotencyKey(channel, subject, key);
        var deadline = time.GetUtcNow() + _options.IdempotencyWaitTimeout;
        while (true)
        {
            if (await db.StringSetAsync(redisKey, Pending, _options.IdempotencyWindow, When.NotExists))
            {
                return null;
            }

            var value = (string?)await db.StringGetAsync(redisKey);
            if (value is not null && value != Pending)
            {
                return Parse(value);
            }

            if (time.GetUtcNow() > deadline)
            {
                throw new TimeoutException("An earlier publish with the same idempotency key is still pending.");
            }

            await Task.Delay(PollInterval, time, cancellationToken);
        }
    }

    public Task CompleteAsync(string channel, string subject, string key, PublishResponse outcome) =>
        redis.GetDatabase().StringSetAsync(
            names.IdempotencyKey(channel, subject, key),
            string.Create(CultureInfo.InvariantCulture, $"{outcome.EventId}|{outcome.Position.Partition}|{outcome.Position.Offset}"),
            _options.IdempotencyWindow);

    public Task ReleaseAsync(string channel, string subject, string key) =>
        redis.GetDatabase().KeyDeleteAsync(names.IdempotencyKey(channel, subject, key));

    private PublishResponse Parse(string value)
    {
        var parts = value.Split('|');
        return new PublishResponse
        {
            EventId = parts[0],
            Position = new KafkaPosition
            {
                Topic = names.IngressTopic,
                Partition = int.Parse(parts[1], CultureInfo.InvariantCulture),
                Offset = long.Parse(parts[2], CultureInfo.InvariantCulture),
            },
        };
    }
}
