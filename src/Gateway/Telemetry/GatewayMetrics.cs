using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Protocol;
using Realtime.Hosting.Telemetry;

namespace Realtime.Gateway.Telemetry;

/// <summary>Which transport a client connection uses (the <c>transport</c> label).</summary>
internal enum Transport
{
    WebSocket,
    Sse,
    LongPoll,
}

/// <summary>
/// The gateway's instruments (meter <c>Realtime.Gateway</c>). Tag arrays are allocated once per
/// label value, so recording on the hot path allocates nothing.
/// </summary>
internal sealed class GatewayMetrics : IDisposable
{
    private static readonly string[] TransportNames = ["websocket", "sse", "longpoll"];
    private static readonly KeyValuePair<string, object?>[][] TransportTags = [.. TransportNames.Select(t => new[] { new KeyValuePair<string, object?>("transport", t) })];

    private readonly Meter _meter;
    private readonly UpDownCounter<long> _connections;
    private readonly Counter<long> _connects;
    private readonly Counter<long> _disconnects;
    private readonly Counter<long> _handshakeFailures;
    private readonly UpDownCounter<long> _subscriptions;
    private readonly Counter<long> _eventsIn;
    private readonly Counter<long> _framesOut;
    private readonly Counter<long> _bytesOut;
    private readonly Counter<long> _slowConsumer;
    private readonly Counter<long> _replayRequests;
    private readonly Counter<long> _replayed;
    private readonly Counter<long> _resyncs;
    private readonly Counter<long> _publishes;
    private readonly Counter<long> _rejections;
    private readonly UpDownCounter<long> _publishStreams;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string, string, string?, string?), KeyValuePair<string, object?>[]> _tagCache = new();

    public GatewayMetrics(IMeterFactory meters, IOptions<GatewayOptions> options, SessionRegistry sessions)
    {
        _meter = meters.Create(PipelineTelemetry.GatewayMeter);
        _connections = _meter.CreateUpDownCounter<long>("realtime.gateway.connections", "{connection}", "Open client connections (held polls included).");
        _meter.CreateObservableGauge("realtime.gateway.connection_capacity", () => (long)options.Value.MaxConnections, "{connection}", "Connections this node admits at most (Gateway:MaxConnections).");
        _connects = _meter.CreateCounter<long>("realtime.gateway.connects", "{connection}", "Connections opened.");
        _disconnects = _meter.CreateCounter<long>("realtime.gateway.disconnects", "{connection}", "Connections closed, by reason.");
        _handshakeFailures = _meter.CreateCounter<long>("realtime.gateway.handshake_failures", "{request}", "Handshakes refused, by cause.");
        _subscriptions = _meter.CreateUpDownCounter<long>("realtime.gateway.subscriptions", "{subscription}", "Channel subscriptions of this node's connections.");
        _eventsIn = _meter.CreateCounter<long>("realtime.gateway.events_in", "{event}", "Records read from this node's delivery topic.");
        _framesOut = _meter.CreateCounter<long>("realtime.gateway.frames_out", "{frame}", "Frames written to client connections.");
        _bytesOut = _meter.CreateCounter<long>("realtime.gateway.bytes_out", "{byte}", "Bytes of frames written to client connections.");
        _meter.CreateObservableGauge("realtime.gateway.send_queue_bytes", () => sessions.QueuedBytes(), "By", "Bytes waiting in the send queues of all connections.");
        _slowConsumer = _meter.CreateCounter<long>("realtime.gateway.slow_consumer_actions", "{action}", "Backpressure taken on connections that fall behind.");
        _replayRequests = _meter.CreateCounter<long>("realtime.gateway.replay_requests", "{request}", "History reads: resumes, gap fills, history calls.");
        _replayed = _meter.CreateCounter<long>("realtime.gateway.replayed_events", "{event}", "Events read from history, by source.");
        _resyncs = _meter.CreateCounter<long>("realtime.gateway.resyncs", "{resync}", "Resync answers, by reason.");
        _publishes = _meter.CreateCounter<long>("realtime.gateway.publishes", "{event}", "Publishes, by outcome.");
        _rejections = _meter.CreateCounter<long>("realtime.gateway.rejections", "{request}", "Requests refused by a limit, by kind.");
        _publishStreams = _meter.CreateUpDownCounter<long>("realtime.gateway.publish_streams", "{stream}", "Open gRPC PublishStream calls.");
    }

    public void Connected(Transport transport)
    {
        _connections.Add(1, TransportTags[(int)transport]);
        _connects.Add(1, TransportTags[(int)transport]);
    }

    public void Disconnected(Transport transport, int closeCode)
    {
        _connections.Add(-1, TransportTags[(int)transport]);
        _disconnects.Add(1, Tags("transport", TransportNames[(int)transport], "reason", Reason(closeCode)));
    }

    /// <summary>A held long-poll: counted as a connection while held, without connect/disconnect counts.</summary>
    public void PollHeld(int delta) => _connections.Add(delta, TransportTags[(int)Transport.LongPoll]);

    public void HandshakeFailed(string cause) => _handshakeFailures.Add(1, Tags("cause", cause));

    public void Subscriptions(int delta) => _subscriptions.Add(delta);

    public void EventIn() => _eventsIn.Add(1);

    public void FrameOut(int bytes)
    {
        _framesOut.Add(1);
        _bytesOut.Add(bytes);
    }

    /// <summary>drop_transient, resync or close.</summary>
    public void SlowConsumer(string action) => _slowConsumer.Add(1, Tags("action", action));

    public void Replay(string source, int events)
    {
        _replayRequests.Add(1);
        if (events > 0)
        {
            _replayed.Add(events, Tags("source", source));
        }
    }

    public void Resync(string reason) => _resyncs.Add(1, Tags("reason", reason));

    /// <summary>ack, error, or refused (an event of a PublishStream refused alone; a refused unary call shows in its gRPC status).</summary>
    public void Published(string outcome) => _publishes.Add(1, Tags("outcome", outcome));

    public void PublishStreamOpened() => _publishStreams.Add(1);

    public void PublishStreamClosed() => _publishStreams.Add(-1);

    /// <summary>rate_limited, admission or user_connections.</summary>
    public void Rejected(string kind) => _rejections.Add(1, Tags("kind", kind));

    public void Dispose() => _meter.Dispose();

    private static string Reason(int closeCode) => closeCode switch
    {
        CloseCodes.Normal => "normal",
        CloseCodes.GoingAway => "drain",
        CloseCodes.SlowConsumer => "slow_consumer",
        CloseCodes.TokenExpired => "expired",
        CloseCodes.Revoked => "revoked",
        CloseCodes.Disconnected => "disconnected",
        CloseCodes.Unresponsive => "unresponsive",
        CloseCodes.MessageTooBig or CloseCodes.UnsupportedData or CloseCodes.InvalidPayload => "protocol_error",
        _ => "error",
    };

    /// <summary>One cached tag array per label value: label values here come from small fixed sets.</summary>
    private KeyValuePair<string, object?>[] Tags(string key, string value, string? key2 = null, string? value2 = null) =>
        _tagCache.GetOrAdd((key, value, key2, value2), static k => k.Item3 is null ? [new(k.Item1, k.Item2)] : [new(k.Item1, k.Item2), new(k.Item3, k.Item4)]);
}
