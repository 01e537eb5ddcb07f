using System.Globalization;
using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;

namespace Realtime.Gateway.Connections;

/// <summary>
/// One listen-only client over Server-Sent Events (browser <c>EventSource</c>). Each message is
/// a JSON protocol frame in <c>data:</c>; every frame that moves the stream's position carries
/// an <c>id:</c>, the compact cursor of all its channels, which the browser sends back as
/// <c>Last-Event-ID</c> when it reconnects by itself, so the stream resumes without a gap.
/// </summary>
/// <remarks>
/// SSE has no client frames, so a client that falls behind is not told to resubscribe: its
/// stream ends after what is queued, and it reconnects and catches up from its cursor.
/// </remarks>
internal sealed class SseConnection : ClientSession
{
    private static readonly byte[] Heartbeat = ":\n\n"u8.ToArray();

    private readonly HttpContext _context;
    private readonly PipeWriter _body;
    private readonly IReadOnlyList<string> _channels;
    private readonly IReadOnlyDictionary<string, ChannelPosition> _resumeFrom;
    private volatile bool _ended;

    public SseConnection(
        HttpContext context,
        ClientIdentity identity,
        ConnectionServices services,
        IReadOnlyList<string> channels,
        IReadOnlyDictionary<string, ChannelPosition> resumeFrom)
        : base(identity, services, FrameFormat.Json)
    {
        _context = context;
        _body = context.Response.BodyWriter;
        _channels = channels;
        _resumeFrom = resumeFrom;
    }

    protected override Telemetry.Transport Transport => Telemetry.Transport.Sse;

    protected override bool IsTransportClosed => _ended || _context.RequestAborted.IsCancellationRequested;

    /// <summary>The stream's opening: the reconnect delay for EventSource (jittered per stream), before any frame.</summary>
    public async Task StartAsync()
    {
        var delay = Services.Options.SseReconnectDelay.TotalMilliseconds;
        var retry = (long)(delay * (0.5 + Random.Shared.NextDouble()));
        await _body.WriteAsync(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"retry: {retry}\n\n")));
        await _body.FlushAsync();
    }

    protected override async Task RunTransportAsync()
    {
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(_context.RequestAborted, SessionClosing);
        foreach (var channel in _channels)
        {
            var since = _resumeFrom.TryGetValue(channel, out var position) ? position : (ChannelPosition?)null;
            if (await SubscribeAsync(null, channel, since) is null)
            {
                // The error frame is queued; end the stream so EventSource retries from its cursor.
                RequestClose(CloseCodes.InternalError, "subscribe failed", dropQueued: false);
                return;
            }
        }

        var interval = Services.Options.SseHeartbeatInterval;
        while (!ended.IsCancellationRequested)
        {
            await Task.Delay(interval, ended.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (!ended.IsCancellationRequested && Queue.QueuedBytes == 0)
            {
                var heartbeat = SharedFrame.Copy(Heartbeat);
                Enqueue(new QueuedFrame(heartbeat, Raw: true));
                heartbeat.Release();
            }
        }
    }

    protected override string? PositionId() =>
        StreamCursorCodec.Encode(Cursors.Where(c => c.Value.Epoch.Length > 0).Select(c => KeyValuePair.Create(c.Key, new ChannelPosition(c.Value.Epoch, c.Value.LastSeq))));

    /// <summary>An SSE client cannot refresh on the stream: it is not warned, and reconnects with a fresh token when the stream ends at expiry.</summary>
    protected override void OnTokenExpiring(TimeSpan remaining)
    {
    }

    protected override void OnTokenExpired() => RequestClose(CloseCodes.TokenExpired, "token expired", dropQueued: false);

    protected override void OnFellBehind(string channel, ChannelCursor cursor) =>
        RequestClose(CloseCodes.Normal, "fell behind", dropQueued: false);

    protected override async ValueTask WriteAsync(QueuedFrame item, bool more)
    {
        if (item.Raw)
        {
            _body.Write(item.Frame.Memory.Span);
        }
        else
        {
            if (item.StreamId is { } id)
            {
                _body.Write("id: "u8);
                Encoding.ASCII.GetBytes(id, _body);
                _body.Write("\n"u8);
            }

            WriteData(item.Frame.Memory.Span);
        }

        if (!more)
        {
            // Frames that queued up together go out in one flush.
            await _body.FlushAsync();
        }
    }

    protected override async Task CloseTransportAsync(int code, string? reason, CancellationToken cancellationToken)
    {
        try
        {
            await _body.FlushAsync(cancellationToken);
        }
        finally
        {
            _ended = true;
        }
    }

    protected override void Abort() => _context.Abort();

    /// <summary>One <c>data:</c> line per line of the frame: a payload published with line breaks in its JSON still parses on the client.</summary>
    private void WriteData(ReadOnlySpan<byte> json)
    {
        while (true)
        {
            _body.Write("data: "u8);
            var end = json.IndexOfAny((byte)'\n', (byte)'\r');
            if (end < 0)
            {
                _body.Write(json);
                _body.Write("\n\n"u8);
                return;
            }

            _body.Write(json[..end]);
            _body.Write("\n"u8);
            json = json[(end + 1)..];
        }
    }
}
