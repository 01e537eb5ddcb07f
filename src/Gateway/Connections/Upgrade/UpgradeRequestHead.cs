using System.Buffers;
using System.Text;

namespace Realtime.Gateway.Connections.Upgrade;

/// <summary>What <see cref="UpgradeRequestHead.TryRead"/> found at the start of a connection.</summary>
internal enum UpgradeHeadStatus
{
    /// <summary>Not enough bytes yet to tell.</summary>
    Incomplete,

    /// <summary>
    /// Anything but a plain, well-formed WebSocket handshake on the path: Kestrel answers it, exactly
    /// as it would without the direct upgrade (including every error response).
    /// </summary>
    NotHandled,

    /// <summary>A complete WebSocket handshake request on the path; the direct upgrade takes it.</summary>
    Handled,
}

/// <summary>
/// The head of an HTTP/1.1 WebSocket handshake (<c>GET /ws?... HTTP/1.1</c> with <c>Upgrade:
/// websocket</c>), read from a connection's first bytes by <see cref="DirectWebSocketUpgrade"/>.
/// </summary>
/// <remarks>
/// Deliberately narrow: it accepts only what RFC 6455 section 4.1 and RFC 9112 call a valid
/// handshake written the plain way (ASCII header lines, no folding, no body, one Host) and calls
/// everything else <see cref="UpgradeHeadStatus.NotHandled"/>, so that Kestrel's parser, limits and
/// error answers stay the only ones a malformed request ever meets.
/// </remarks>
internal sealed class UpgradeRequestHead
{
    /// <summary>At most this many header lines, as Kestrel's default <c>MaxRequestHeaderCount</c>.</summary>
    public const int MaxHeaderCount = 100;

    private static ReadOnlySpan<byte> Method => "GET "u8;

    private static ReadOnlySpan<byte> Version => " HTTP/1.1"u8;

    private static ReadOnlySpan<byte> EndOfHead => "\r\n\r\n"u8;

    private UpgradeRequestHead(string path, string queryString, IHeaderDictionary headers)
    {
        Path = path;
        QueryString = queryString;
        Headers = headers;
    }

    public string Path { get; }

    /// <summary>The query with its leading <c>?</c>, or empty.</summary>
    public string QueryString { get; }

    public IHeaderDictionary Headers { get; }

    /// <summary>The request target as sent: the path and query.</summary>
    public string RawTarget => Path + QueryString;

    /// <summary>
    /// Reads a handshake for <paramref name="path"/> from <paramref name="buffer"/>. On
    /// <see cref="UpgradeHeadStatus.Handled"/>, <paramref name="consumed"/> is where the head ends. A head over
    /// <paramref name="maxHeadBytes"/> or a request line over <paramref name="maxRequestLineBytes"/> is left to Kestrel.
    /// </summary>
    public static UpgradeHeadStatus TryRead(in ReadOnlySequence<byte> buffer, string path, int maxHeadBytes, int maxRequestLineBytes, out UpgradeRequestHead? head, out SequencePosition consumed)
    {
        head = null;
        consumed = buffer.Start;
        var length = (int)Math.Min(buffer.Length, maxHeadBytes);
        byte[]? rented = null;
        var bytes = buffer.IsSingleSegment || buffer.FirstSpan.Length >= length
            ? buffer.FirstSpan[..length]
            : Copy(buffer.Slice(0, length), rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var status = Read(bytes, path, buffer.Length > maxHeadBytes, maxRequestLineBytes, out head, out var headLength);
            if (status == UpgradeHeadStatus.Handled)
            {
                consumed = buffer.GetPosition(headLength);
            }

            return status;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static ReadOnlySpan<byte> Copy(in ReadOnlySequence<byte> source, byte[] target)
    {
        source.CopyTo(target);
        return target.AsSpan(0, (int)source.Length);
    }

    private static UpgradeHeadStatus Read(ReadOnlySpan<byte> bytes, string path, bool overLimit, int maxRequestLineBytes, out UpgradeRequestHead? head, out int headLength)
    {
        head = null;
        headLength = 0;

        // The request line decides early: anything not starting "GET /ws" goes to Kestrel at once.
        Span<byte> prefix = stackalloc byte[Method.Length + path.Length];
        Method.CopyTo(prefix);
        Encoding.ASCII.GetBytes(path, prefix[Method.Length..]);
        var compared = Math.Min(bytes.Length, prefix.Length);
        if (!bytes[..compared].SequenceEqual(prefix[..compared]))
        {
            return UpgradeHeadStatus.NotHandled;
        }

        // The request line decides next, before the rest of the head has arrived.
        // A request line longer than Kestrel allows gets Kestrel's 414.
        var lineEnd = bytes.IndexOf("\r\n"u8);
        if (lineEnd < 0)
        {
            return overLimit || bytes.Length >= maxRequestLineBytes ? UpgradeHeadStatus.NotHandled : UpgradeHeadStatus.Incomplete;
        }

        if (lineEnd + 2 > maxRequestLineBytes)
        {
            return UpgradeHeadStatus.NotHandled;
        }

        var requestLine = bytes[..lineEnd];
        if (!requestLine.EndsWith(Version) || requestLine.Length < prefix.Length + Version.Length)
        {
            return UpgradeHeadStatus.NotHandled;
        }

        var target = requestLine[Method.Length..^Version.Length];
        var afterPath = target[path.Length..];
        if (!IsVisibleAscii(target) || (afterPath.Length > 0 && afterPath[0] != (byte)'?'))
        {
            // "/ws/x", "/wsx", "/ws#": another resource, or one Kestrel normalises.
            return UpgradeHeadStatus.NotHandled;
        }

        var end = bytes.IndexOf(EndOfHead);
        if (end < 0)
        {
            return overLimit ? UpgradeHeadStatus.NotHandled : UpgradeHeadStatus.Incomplete;
        }

        headLength = end + EndOfHead.Length;
        IHeaderDictionary headers = new HeaderDictionary();
        var lines = bytes[(lineEnd + 2)..end];
        var count = 0;
        while (lines.Length > 0)
        {
            var next = lines.IndexOf("\r\n"u8);
            var line = next < 0 ? lines : lines[..next];
            lines = next < 0 ? default : lines[(next + 2)..];
            if (++count > MaxHeaderCount || !TryReadHeader(line, out var name, out var value))
            {
                return UpgradeHeadStatus.NotHandled;
            }

            headers.Append(name, value);
        }

        if (!IsWebSocketHandshake(headers))
        {
            return UpgradeHeadStatus.NotHandled;
        }

        head = new UpgradeRequestHead(path, Encoding.ASCII.GetString(afterPath), headers);
        return UpgradeHeadStatus.Handled;
    }

    // field-line = field-name ":" OWS field-value OWS, with a token for a name and visible ASCII,
    // spaces and tabs for a value. Folded lines, bare CRs and bytes beyond ASCII are Kestrel's.
    private static bool TryReadHeader(ReadOnlySpan<byte> line, out string name, out string value)
    {
        name = value = string.Empty;
        var colon = line.IndexOf((byte)':');
        if (colon <= 0)
        {
            return false;
        }

        var nameBytes = line[..colon];
        foreach (var b in nameBytes)
        {
            if (!IsTokenChar(b))
            {
                return false;
            }
        }

        var valueBytes = line[(colon + 1)..].Trim(" \t"u8);
        foreach (var b in valueBytes)
        {
            if (b is not (>= 0x20 and < 0x7F) and not (byte)'\t')
            {
                return false;
            }
        }

        name = Encoding.ASCII.GetString(nameBytes);
        value = Encoding.ASCII.GetString(valueBytes);
        return true;
    }

    private static bool IsWebSocketHandshake(IHeaderDictionary headers)
    {
        // RFC 6455 4.1 and 4.2.1: one Host, Upgrade naming websocket, Connection naming upgrade,
        // version 13 and a key of 16 bytes in base64. No body: a handshake carries none.
        if (headers.Host.Count != 1 || headers.ContainsKey("Content-Length") || headers.ContainsKey("Transfer-Encoding"))
        {
            return false;
        }

        if (!HasToken(headers.Upgrade, "websocket") || !HasToken(headers.Connection, "upgrade"))
        {
            return false;
        }

        if (headers.SecWebSocketVersion.Count != 1 || headers.SecWebSocketVersion[0] != "13")
        {
            return false;
        }

        Span<byte> key = stackalloc byte[18];
        return headers.SecWebSocketKey.Count == 1
            && headers.SecWebSocketKey[0] is { Length: 24 } encoded
            && Convert.TryFromBase64String(encoded, key, out var written)
            && written == 16;
    }

    private static bool HasToken(Microsoft.Extensions.Primitives.StringValues values, string token)
    {
        foreach (var value in values)
        {
            foreach (var part in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries))
            {
                if (part.Equals(token, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static bool IsVisibleAscii(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            if (b is <= 0x20 or >= 0x7F)
            {
                return false;
            }
        }

        return true;
    }

    // RFC 9110 5.6.2: tchar.
    private static bool IsTokenChar(byte b) =>
        b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9')
            or (byte)'!' or (byte)'#' or (byte)'$' or (byte)'%' or (byte)'&' or (byte)'\'' or (byte)'*' or (byte)'+'
            or (byte)'-' or (byte)'.' or (byte)'^' or (byte)'_' or (byte)'`' or (byte)'|' or (byte)'~';
}
