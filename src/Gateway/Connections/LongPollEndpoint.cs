using System.Buffers;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Replay;
using Realtime.Gateway.Routing;
using StackExchange.Redis;

namespace Realtime.Gateway.Connections;

/// <summary>
/// <c>GET /v1/poll</c>: long-poll for networks where streams are buffered. Each request is
/// stateless: the cursor says where the client is in each channel. With
/// <c>?channels=a,b</c> and no cursor it answers at once with the cursor of "now"; with
/// <c>?cursor=</c> it answers at once with what the client missed, else holds the request
/// until an event arrives (<c>200</c>: events and the next cursor) or
/// <see cref="GatewayOptions.LongPollTimeout"/> passes (<c>204</c>: poll again with the same cursor).
/// </summary>
/// <remarks>
/// A response holds the same JSON frames the WebSocket protocol sends (<c>event</c>,
/// <c>resync</c>). The cursor moves only with what the response holds, so a lost response
/// loses nothing: the client polls again with the cursor it had.
/// </remarks>
internal static partial class LongPollEndpoint
{
    public const string Path = "/v1/poll";

    public static IEndpointConventionBuilder MapRealtimeLongPoll(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapGet(Path, HandleAsync);

    private static async Task HandleAsync(
        HttpContext context,
        TokenValidator tokens,
        ChannelHub hub,
        ChannelHistory history,
        HistoryQuery historyQuery,
        IOptions<GatewayOptions> options,
        AdmissionControl admissionControl,
        DrainCoordinator drain,
        SessionRegistry sessions,
        ChannelAuthorizer authorizer,
        Telemetry.GatewayMetrics metrics,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("Realtime.Gateway.LongPoll");
        var settings = options.Value;
        context.Response.Headers.CacheControl = "no-store";

        // A held poll occupies a slot like a connection, but polling again is not a new connection.
        using var admission = await HttpHandshake.AdmitAsync(context, admissionControl, drain, logger, newConnection: false);
        if (admission is null
            || await HttpHandshake.AuthenticateAsync(context, tokens, logger) is not { } identity
            || await HttpHandshake.ReadChannelsAsync(context, authorizer, identity, settings.MaxChannelsPerConnection, required: false) is not { } added)
        {
            return;
        }

        var positions = new Dictionary<string, ChannelPosition>(StringComparer.Ordinal);
        var cursorText = context.Request.Query["cursor"].ToString();
        if (cursorText.Length > 0)
        {
            if (!StreamCursorCodec.TryDecode(cursorText, settings.MaxChannelsPerConnection, out positions))
            {
                await HttpHandshake.RefuseAsync(context, StatusCodes.Status400BadRequest, ErrorCodes.BadCursor, "The cursor is not one this service issued.");
                return;
            }

            foreach (var channel in positions.Keys)
            {
                // The token is checked on every poll: a cursor grants nothing by itself.
                if (!await HttpHandshake.AuthorizeAsync(context, authorizer, identity, ChannelAction.Subscribe, channel))
                {
                    return;
                }
            }
        }
        else if (added.Count == 0)
        {
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status400BadRequest, ErrorCodes.BadRequest, "Give ?cursor= from the last response, or ?channels=a,b to start.");
            return;
        }

        if (positions.Count + added.Count(c => !positions.ContainsKey(c)) > settings.MaxChannelsPerConnection)
        {
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status400BadRequest, ErrorCodes.TooManyChannels, $"At most {settings.MaxChannelsPerConnection} channels per connection.");
            return;
        }

        var response = new PollResponse(settings.LongPollMaxEvents);
        try
        {
            // New channels start now: the client gets their head in the cursor, events after it.
            var startingNow = added.Where(c => !positions.ContainsKey(c)).ToList();
            foreach (var channel in startingNow)
            {
                positions[channel] = await history.HeadAsync(channel);
            }

            if (cursorText.Length == 0 || startingNow.Count > 0)
            {
                await WriteAsync(context, response, positions);
                return;
            }

            // A poll is not held past its token's expiry: the client then polls again with a fresh token.
            var deadline = DateTime.UtcNow + settings.LongPollTimeout;
            if (identity.ExpiresAt.UtcDateTime < deadline)
            {
                deadline = identity.ExpiresAt.UtcDateTime;
            }

            while (true)
            {
                await ReadBacklogAsync(historyQuery, metrics, positions, response);
                if (!response.IsEmpty)
                {
                    await WriteAsync(context, response, positions);
                    return;
                }

                var remaining = deadline - DateTime.UtcNow;
                if (remaining <= TimeSpan.Zero || drain.IsDraining)
                {
                    context.Response.StatusCode = StatusCodes.Status204NoContent;
                    return;
                }

                var waiter = new LongPollWaiter(identity, context, positions.Keys, settings.LongPollMaxEvents);
                sessions.Add(waiter);
                metrics.PollHeld(1);
                try
                {
                    foreach (var channel in positions.Keys)
                    {
                        await hub.SubscribeAsync(channel, waiter);
                    }

                    // Events sequenced before the routes existed were not routed here: look again.
                    await ReadBacklogAsync(historyQuery, metrics, positions, response);
                    if (response.IsEmpty)
                    {
                        await waiter.WaitAsync(remaining, drain.Draining);
                    }
                }
                finally
                {
                    metrics.PollHeld(-1);
                    sessions.Remove(waiter);
                    waiter.Stop();
                    foreach (var channel in positions.Keys)
                    {
                        await hub.UnsubscribeAsync(channel, waiter);
                    }
                }

                if (context.RequestAborted.IsCancellationRequested)
                {
                    waiter.Release();
                    return;
                }

                waiter.MoveTo(response, positions);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogUnavailable(logger, e.Message);
            if (!context.Response.HasStarted)
            {
                await HttpHandshake.RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, ErrorCodes.Unavailable, "History or routing is unavailable; poll again with the same cursor.", TimeSpan.FromSeconds(1));
            }
        }
        finally
        {
            response.Dispose();
        }
    }

    /// <summary>What the client missed since its positions, up to the response's room, moving the positions with it.</summary>
    private static async Task ReadBacklogAsync(HistoryQuery history, Telemetry.GatewayMetrics metrics, Dictionary<string, ChannelPosition> positions, PollResponse response)
    {
        foreach (var (channel, position) in positions.ToList())
        {
            if (response.Room == 0)
            {
                return;
            }

            var page = await history.ReadAsync(channel, position.Epoch, position.Seq, response.Room);
            var frames = ServerFrames.ForCurrentThread();
            if (page.Resync is { } resync)
            {
                metrics.Resync(resync.Reason);
                response.Add(frames.Resync(channel, resync.Reason, resync.Position));
                positions[channel] = resync.Position;
                continue;
            }

            foreach (var replayed in page.Events)
            {
                response.Add(frames.Event(replayed.Envelope, replayed.Seq, page.Head.Epoch));
                positions[channel] = new ChannelPosition(page.Head.Epoch, replayed.Seq);
            }
        }
    }

    private static async Task WriteAsync(HttpContext context, PollResponse response, Dictionary<string, ChannelPosition> positions)
    {
        context.Response.ContentType = "application/json";
        var body = context.Response.BodyWriter;
        body.Write("{\"events\":["u8);
        var first = true;
        foreach (var frame in response.Frames)
        {
            if (!first)
            {
                body.Write(","u8);
            }

            body.Write(frame.Memory.Span);
            first = false;
        }

        body.Write("],\"cursor\":"u8);
        using (var writer = new Utf8JsonWriter(body))
        {
            writer.WriteStringValue(StreamCursorCodec.Encode(positions));
        }

        body.Write("}"u8);
        await body.FlushAsync(context.RequestAborted);
    }

    [LoggerMessage(EventId = 5201, Level = LogLevel.Warning, Message = "Long-poll answered 503: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string reason);

    /// <summary>The frames of one response, bounded by count; owns a reference to each.</summary>
    private sealed class PollResponse(int maxEvents) : IDisposable
    {
        private readonly List<SharedFrame> _frames = [];

        public IReadOnlyList<SharedFrame> Frames => _frames;

        public bool IsEmpty => _frames.Count == 0;

        public int Room => Math.Max(0, maxEvents - _frames.Count);

        /// <summary>Takes over the caller's reference.</summary>
        public void Add(SharedFrame frame) => _frames.Add(frame);

        public void Dispose()
        {
            foreach (var frame in _frames)
            {
                frame.Release();
            }

            _frames.Clear();
        }
    }

    /// <summary>
    /// The live half of a held poll: collects the events routed to it and wakes the request.
    /// Which of them go into the response is decided afterwards, against the positions the
    /// backlog reads moved (<see cref="MoveTo"/>), so an event read from history meanwhile is
    /// never sent twice and a gap is served from history, in order.
    /// </summary>
    private sealed class LongPollWaiter(ClientIdentity identity, HttpContext context, IEnumerable<string> channels, int maxEvents) : IFrameSink, IDisconnectable
    {
        private readonly Lock _gate = new();
        private readonly HashSet<string> _channels = new(channels, StringComparer.Ordinal);
        private readonly List<(string Channel, SharedFrame Frame, ulong Seq, string Epoch)> _collected = [];
        private readonly TaskCompletionSource _woken = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _stopped;

        public ClientIdentity Identity { get; } = identity;

        public void DeliverEvent(string channel, OutgoingEvent outgoing)
        {
            lock (_gate)
            {
                if (_stopped || !_channels.Contains(channel))
                {
                    return;
                }

                if (_collected.Count < maxEvents)
                {
                    var frame = outgoing.Frame(FrameFormat.Json);
                    frame.AddReference();
                    _collected.Add((channel, frame, outgoing.Seq, outgoing.Epoch));
                }

                _woken.TrySetResult();
            }
        }

        public void CatchUp(string channel, ChannelPosition head) => _woken.TrySetResult();

        public void Disconnect(int code, string reason) => context.Abort();

        public async Task WaitAsync(TimeSpan timeout, CancellationToken draining)
        {
            using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, draining);
            await _woken.Task.WaitAsync(timeout, ended.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        /// <summary>Takes nothing more: from here on the response is being written.</summary>
        public void Stop()
        {
            lock (_gate)
            {
                _stopped = true;
            }
        }

        /// <summary>
        /// Adds to the response the collected events that follow on from the positions, in
        /// order, moving them; drops duplicates; stops a channel at a gap or an epoch change
        /// (the next backlog read serves those). Transient events go in as they are.
        /// </summary>
        public void MoveTo(PollResponse response, Dictionary<string, ChannelPosition> positions)
        {
            var stalled = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (channel, frame, seq, epoch) in _collected)
            {
                if (seq == 0)
                {
                    if (response.Room > 0)
                    {
                        response.Add(frame);
                    }
                    else
                    {
                        frame.Release();
                    }

                    continue;
                }

                var position = positions[channel];
                if (!stalled.Contains(channel) && response.Room > 0 && epoch == position.Epoch && seq == position.Seq + 1)
                {
                    response.Add(frame);
                    positions[channel] = new ChannelPosition(epoch, seq);
                    continue;
                }

                if (epoch != position.Epoch || seq > position.Seq)
                {
                    stalled.Add(channel);
                }

                frame.Release();
            }

            _collected.Clear();
        }

        /// <summary>Drops what was collected (the request is gone).</summary>
        public void Release()
        {
            foreach (var (_, frame, _, _) in _collected)
            {
                frame.Release();
            }

            _collected.Clear();
        }
    }
}
