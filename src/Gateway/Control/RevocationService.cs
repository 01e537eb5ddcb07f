using System.Text.Json;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Publishing;
using Realtime.Gateway.Replay;
using Realtime.Gateway.Routing;
using StackExchange.Redis;

namespace Realtime.Gateway.Control;

/// <summary>
/// Revocations, end to end. Revoking stores the revocation in Redis (so later handshakes with
/// older tokens are refused, on any node, including nodes that start later) and publishes a
/// control event on <see cref="PipelineNames.ControlChannel"/>, which every gateway routes to
/// itself: the fanout carries it to all of them like any event, and each ends the matching
/// sessions and subscriptions it holds.
/// </summary>
internal sealed partial class RevocationService(
    ChannelHub hub,
    RevocationList revocations,
    SessionRegistry sessions,
    EventFactory events,
    EventPublisher publisher,
    IConnectionMultiplexer redis,
    PipelineNames names,
    IOptions<AuthOptions> options,
    TimeProvider time,
    ILogger<RevocationService> logger) : BackgroundService, IFrameSink
{
    public const string SessionsRevoked = "auth.revoked";
    public const string ChannelAccessRevoked = "channel.access.revoked";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly TimeSpan _retention = options.Value.RevocationRetention;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Before the node takes clients: revocations made while it was away, then the control route.
        var attempt = 0;
        while (true)
        {
            try
            {
                var loaded = await LoadAsync();
                await hub.SubscribeAsync(PipelineNames.ControlChannel, this);
                LogLoaded(loaded);
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

        await base.StartAsync(cancellationToken);
    }

    public Task<DateTimeOffset> RevokeSessionsAsync(ClientIdentity by, string subject, string reason) =>
        RevokeAsync(by, new Notice(subject, null, reason, 0), SessionsRevoked, names.RevokedSubjectKey(subject));

    public Task<DateTimeOffset> RevokeChannelAccessAsync(ClientIdentity by, string subject, string channel) =>
        RevokeAsync(by, new Notice(subject, channel, null, 0), ChannelAccessRevoked, names.RevokedChannelKey(subject, channel));

    public void DeliverEvent(string channel, OutgoingEvent outgoing)
    {
        Notice? notice;
        try
        {
            notice = JsonSerializer.Deserialize<Notice>(outgoing.Envelope.Payload.Span, Json);
        }
        catch (JsonException)
        {
            notice = null;
        }

        if (notice is null || string.IsNullOrEmpty(notice.Subject))
        {
            LogUndecodable(outgoing.Envelope.EventType);
            return;
        }

        Apply(outgoing.Envelope.EventType, notice);
    }

    public void CatchUp(string channel, ChannelPosition head)
    {
        // Control events are not replayed: revocations missed meanwhile are in Redis, and are
        // checked against every new handshake; live sessions were already told by other paths.
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMinutes(1), time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            revocations.Prune();
        }
    }

    private async Task<DateTimeOffset> RevokeAsync(ClientIdentity by, Notice notice, string kind, string key)
    {
        var at = time.GetUtcNow();
        notice = notice with { AtUnixMs = at.ToUnixTimeMilliseconds() };
        var payload = JsonSerializer.SerializeToUtf8Bytes(notice, Json);
        await redis.GetDatabase().StringSetAsync(key, payload, _retention);

        // Effective here at once; the control event brings it to every node, this one included.
        Apply(kind, notice);
        var envelope = events.Create(by, PublishOrigin.Grpc, PipelineNames.ControlChannel, kind, ByteString.CopyFrom(payload), EventFactory.JsonContentType, 0, null, transient: true);
        await publisher.PublishAsync(envelope, CancellationToken.None);
        LogRevoked(kind, by.Subject);
        return at;
    }

    private void Apply(string kind, Notice notice)
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(notice.AtUnixMs);
        var until = at + _retention;
        if (kind == ChannelAccessRevoked && notice.Channel is { } channel)
        {
            revocations.RevokeChannel(notice.Subject, channel, at, until);
            foreach (var session in sessions.OfSubject(notice.Subject))
            {
                if (session is ClientSession client && revocations.IsChannelRevoked(client.Identity, channel))
                {
                    _ = client.RevokeChannelAsync(channel);
                }
            }
        }
        else if (kind == SessionsRevoked)
        {
            revocations.RevokeSubject(notice.Subject, at, until);
            foreach (var session in sessions.OfSubject(notice.Subject))
            {
                if (!revocations.IsRevoked(session.Identity))
                {
                    continue;
                }

                if (session is ClientSession client)
                {
                    client.Revoke(notice.Reason ?? "revoked");
                }
                else
                {
                    session.Disconnect(CloseCodes.Revoked, "revoked");
                }
            }
        }
    }

    /// <summary>Reads every stored revocation of this namespace (a few at most: they are rare and expire).</summary>
    private async Task<int> LoadAsync()
    {
        var count = 0;
        var db = redis.GetDatabase();
        foreach (var endpoint in redis.GetEndPoints())
        {
            var server = redis.GetServer(endpoint);
            if (server.IsReplica || !server.IsConnected)
            {
                continue;
            }

            await foreach (var key in server.KeysAsync(db.Database, names.RevokedKeyPattern, pageSize: 1000))
            {
                var value = await db.StringGetAsync(key);
                var notice = value.IsNull ? null : JsonSerializer.Deserialize<Notice>((byte[])value!, Json);
                if (notice is null)
                {
                    continue;
                }

                var at = DateTimeOffset.FromUnixTimeMilliseconds(notice.AtUnixMs);
                if (notice.Channel is { } channel)
                {
                    revocations.RevokeChannel(notice.Subject, channel, at, at + _retention);
                }
                else
                {
                    revocations.RevokeSubject(notice.Subject, at, at + _retention);
                }

                count++;
            }
        }

        return count;
    }

    /// <summary>The payload of a control event, and the value stored in Redis.</summary>
    private sealed record Notice(string Subject, string? Channel, string? Reason, long AtUnixMs);

    [LoggerMessage(EventId = 6300, Level = LogLevel.Information, Message = "Loaded {Count} revocations; control channel routed here")]
    private partial void LogLoaded(int count);

    [LoggerMessage(EventId = 6301, Level = LogLevel.Warning, Message = "Redis unavailable at start ({Reason}); retrying")]
    private partial void LogRedisUnavailable(string reason);

    [LoggerMessage(EventId = 6302, Level = LogLevel.Warning, Message = "Revocation ({Kind}) requested by {By}")]
    private partial void LogRevoked(string kind, string by);

    [LoggerMessage(EventId = 6303, Level = LogLevel.Error, Message = "Skipped an undecodable control event ({Kind})")]
    private partial void LogUndecodable(string kind);
}
