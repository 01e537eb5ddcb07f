using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;

namespace Realtime.Bench.Targets;

/// <summary>Receives one complete WebSocket message on a <see cref="LoopbackWebSocket"/>'s read loop; the span is valid only during the call.</summary>
internal delegate void WebSocketMessageHandler(ReadOnlySpan<byte> message);

/// <summary>
/// The generator's WebSocket client (RFC 6455, client side, no extensions) on a plain socket bound
/// to a source address, shared by every target. It exists because the generator must stay far
/// cheaper than the systems it measures: <see cref="ClientWebSocket"/> costs one
/// <c>ReceiveAsync</c> (a receive lock, a cancellation registration, a copy) per message, which
/// kept the generator above 70% of its core at 50,000-100,000 deliveries a second and made every
/// target's W2 runs at 10 and 20 events/s invalid. This one reads what the socket has into one
/// buffer and hands every complete message in it to the handler from that buffer, so a read that
/// brings several frames costs one receive. It answers pings with pongs and a close with a close;
/// frames it sends are masked, as a client's must be.
/// </summary>
internal sealed class LoopbackWebSocket : IAsyncDisposable
{
    private const int MaxMessageBytes = 1 << 20;
    private const int MaxHandshakeBytes = 16 * 1024;
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(30);

    private readonly Socket _socket;
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private byte[] _buffer;
    private int _buffered;
    private Task _reader = Task.CompletedTask;

    private LoopbackWebSocket(Socket socket, byte[] buffer, int buffered)
    {
        (_socket, _buffer, _buffered) = (socket, buffer, buffered);
    }

    /// <summary>Completes when the read loop ends: the server closed, the connection was aborted or failed.</summary>
    public Task Completion => _reader;

    /// <summary>
    /// Opens a TCP connection from <paramref name="source"/> (any loopback address when null) to
    /// <paramref name="uri"/> (<c>ws://</c> only: the generator measures loopback servers) and
    /// performs the upgrade with <paramref name="headers"/> added to the request. Throws
    /// <see cref="WebSocketException"/> when the server does not switch protocols.
    /// </summary>
    public static async Task<LoopbackWebSocket> ConnectAsync(Uri uri, IPAddress? source, IEnumerable<KeyValuePair<string, string>> headers, CancellationToken cancellationToken)
    {
        if (uri.Scheme != "ws")
        {
            throw new ArgumentException($"only ws:// is supported, not {uri.Scheme}://", nameof(uri));
        }

        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (source is not null)
            {
                socket.Bind(new IPEndPoint(source, 0));
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(HandshakeTimeout);
            await socket.ConnectAsync(new DnsEndPoint(uri.Host, uri.Port), timeout.Token);
            var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
            var request = new StringBuilder()
                .Append("GET ").Append(uri.PathAndQuery).Append(" HTTP/1.1\r\n")
                .Append("Host: ").Append(uri.Authority).Append("\r\n")
                .Append("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
                .Append("Sec-WebSocket-Key: ").Append(key).Append("\r\n");
            foreach (var (name, value) in headers)
            {
                request.Append(name).Append(": ").Append(value).Append("\r\n");
            }

            await SendAllAsync(socket, Encoding.ASCII.GetBytes(request.Append("\r\n").ToString()), timeout.Token);
            var (buffer, buffered) = await ReadUpgradeAsync(socket, key, timeout.Token);
            var webSocket = new LoopbackWebSocket(socket, buffer, buffered);
            return webSocket;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new TimeoutException($"the WebSocket handshake with {uri} took longer than {HandshakeTimeout.TotalSeconds} s");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Starts the read loop; <paramref name="onMessage"/> gets every text or binary message, in order, on that loop.</summary>
    public void Start(WebSocketMessageHandler onMessage) => _reader = ReadAsync(onMessage);

    /// <summary>Sends one text message; concurrent callers take turns.</summary>
    public async Task SendTextAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken) =>
        await SendFrameAsync(0x1, message, cancellationToken);

    /// <summary>Sends without waiting (from the read loop or a timer); a failure shows as the connection ending.</summary>
    public void PostText(ReadOnlyMemory<byte> message) => _ = PostAsync(0x1, message);

    /// <summary>Drops the connection without a close handshake, as a lost network would.</summary>
    public void Abort()
    {
        _stop.Cancel();
        _socket.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        await _reader.ContinueWith(_ => { }, TaskScheduler.Default);
        _sending.Dispose();
        _stop.Dispose();
    }

    private static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            var sent = await socket.SendAsync(bytes, SocketFlags.None, cancellationToken);
            bytes = bytes[sent..];
        }
    }

    /// <summary>Reads the server's answer to the upgrade; returns the buffer holding whatever followed it (frames may come right behind).</summary>
    private static async Task<(byte[] Buffer, int Buffered)> ReadUpgradeAsync(Socket socket, string key, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxHandshakeBytes];
        var count = 0;
        int end;
        while ((end = buffer.AsSpan(0, count).IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (count == buffer.Length)
            {
                throw new WebSocketException($"the server's handshake answer is over {MaxHandshakeBytes} bytes");
            }

            var read = await socket.ReceiveAsync(buffer.AsMemory(count), SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                throw new WebSocketException("the server closed the connection during the WebSocket handshake");
            }

            count += read;
        }

        var head = Encoding.ASCII.GetString(buffer, 0, end);
        var lines = head.Split("\r\n");
        if (!lines[0].StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
        {
            throw new WebSocketException($"the server did not switch to WebSocket: {lines[0]}");
        }

        // RFC 6455 fixes SHA-1 for the accept value; it proves the server speaks WebSocket, it protects nothing.
#pragma warning disable CA5350
        var expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
#pragma warning restore CA5350
        var accept = lines.Skip(1)
            .Select(line => line.Split(':', 2))
            .FirstOrDefault(parts => parts.Length == 2 && parts[0].Trim().Equals("Sec-WebSocket-Accept", StringComparison.OrdinalIgnoreCase))?[1].Trim();
        if (accept != expected)
        {
            throw new WebSocketException("the server's Sec-WebSocket-Accept does not match the key");
        }

        var rest = count - (end + 4);
        buffer.AsSpan(end + 4, rest).CopyTo(buffer);
        return (buffer, rest);
    }

    private async Task PostAsync(byte opcode, ReadOnlyMemory<byte> message)
    {
        try
        {
            await SendFrameAsync(opcode, message, _stop.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task SendFrameAsync(byte opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var headerLength = payload.Length < 126 ? 2 : payload.Length <= ushort.MaxValue ? 4 : 10;
        var frame = new byte[headerLength + 4 + payload.Length];
        frame[0] = (byte)(0x80 | opcode);
        if (headerLength == 2)
        {
            frame[1] = (byte)(0x80 | payload.Length);
        }
        else if (headerLength == 4)
        {
            frame[1] = 0x80 | 126;
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)payload.Length);
        }
        else
        {
            frame[1] = 0x80 | 127;
            BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(2), (ulong)payload.Length);
        }

        var mask = frame.AsSpan(headerLength, 4);
        RandomNumberGenerator.Fill(mask);
        var body = frame.AsSpan(headerLength + 4);
        payload.Span.CopyTo(body);
        for (var i = 0; i < body.Length; i++)
        {
            body[i] ^= mask[i & 3];
        }

        await _sending.WaitAsync(cancellationToken);
        try
        {
            await SendAllAsync(_socket, frame, cancellationToken);
        }
        finally
        {
            _sending.Release();
        }
    }

    private async Task ReadAsync(WebSocketMessageHandler onMessage)
    {
        // A message split over several frames (the servers measured here do not, but RFC 6455 allows it).
        byte[]? fragments = null;
        var fragmented = 0;
        try
        {
            while (true)
            {
                var consumed = 0;
                while (TryParseFrame(_buffer.AsSpan(consumed, _buffered - consumed), out var final, out var opcode, out var header, out var length))
                {
                    var payloadSpan = _buffer.AsSpan(consumed + header, length);
                    consumed += header + length;
                    switch (opcode)
                    {
                        case 0x1 or 0x2 when final && fragments is null:
                            onMessage(payloadSpan);
                            break;
                        case 0x0 or 0x1 or 0x2:
                            fragments ??= new byte[Math.Max(4096, payloadSpan.Length)];
                            if (fragmented + payloadSpan.Length > MaxMessageBytes)
                            {
                                throw new WebSocketException($"a message over {MaxMessageBytes} bytes");
                            }

                            if (fragmented + payloadSpan.Length > fragments.Length)
                            {
                                Array.Resize(ref fragments, Math.Max(fragments.Length * 2, fragmented + payloadSpan.Length));
                            }

                            payloadSpan.CopyTo(fragments.AsSpan(fragmented));
                            fragmented += payloadSpan.Length;
                            if (final)
                            {
                                onMessage(fragments.AsSpan(0, fragmented));
                                (fragments, fragmented) = (null, 0);
                            }

                            break;
                        case 0x8: // close: answer it and end.
                            PostControl(0x8, payloadSpan[..Math.Min(2, payloadSpan.Length)]);
                            return;
                        case 0x9: // ping: pong with its payload.
                            PostControl(0xA, payloadSpan);
                            break;
                    }
                }

                if (consumed > 0)
                {
                    _buffer.AsSpan(consumed, _buffered - consumed).CopyTo(_buffer);
                    _buffered -= consumed;
                }

                if (_buffered == _buffer.Length)
                {
                    if (_buffer.Length >= MaxMessageBytes + 14)
                    {
                        throw new WebSocketException($"a frame over {MaxMessageBytes} bytes");
                    }

                    Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxMessageBytes + 14));
                }

                var read = await _socket.ReceiveAsync(_buffer.AsMemory(_buffered), SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    return;
                }

                _buffered += read;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or WebSocketException)
        {
        }
        finally
        {
            _socket.Dispose();
        }
    }

    private void PostControl(byte opcode, ReadOnlySpan<byte> payload) => _ = PostAsync(opcode, payload.ToArray());

    /// <summary>
    /// One whole frame at the start of <paramref name="data"/>, if it is all there: its FIN bit,
    /// opcode, header length and payload length.
    /// </summary>
    private static bool TryParseFrame(ReadOnlySpan<byte> data, out bool final, out byte opcode, out int headerLength, out int payloadLength)
    {
        (final, opcode, headerLength, payloadLength) = (false, 0, 0, 0);
        if (data.Length < 2)
        {
            return false;
        }

        final = (data[0] & 0x80) != 0;
        opcode = (byte)(data[0] & 0x0F);
        var masked = (data[1] & 0x80) != 0;
        long length = data[1] & 0x7F;
        var header = 2;
        if (length == 126)
        {
            if (data.Length < 4)
            {
                return false;
            }

            length = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
            header = 4;
        }
        else if (length == 127)
        {
            if (data.Length < 10)
            {
                return false;
            }

            length = (long)BinaryPrimitives.ReadUInt64BigEndian(data[2..]);
            header = 10;
        }

        if (masked)
        {
            throw new WebSocketException("the server sent a masked frame (RFC 6455 5.1 forbids it)");
        }

        if (length > MaxMessageBytes)
        {
            throw new WebSocketException($"a frame over {MaxMessageBytes} bytes");
        }

        if (data.Length < header + length)
        {
            return false;
        }

        (headerLength, payloadLength) = (header, (int)length);
        return true;
    }
}
