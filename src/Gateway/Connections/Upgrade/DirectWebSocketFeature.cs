using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.Features;

namespace Realtime.Gateway.Connections.Upgrade;

/// <summary>
/// The WebSocket feature of a handshake taken by <see cref="DirectWebSocketUpgrade"/>: accepting
/// writes the <c>101</c> straight to the connection and runs the WebSocket on its transport (the
/// Kestrel connection's pipes, or the socket itself), under a <see cref="KeepAliveStream"/>
/// (pings come from the node's one sweep).
/// </summary>
internal sealed class DirectWebSocketFeature(UpgradeTransport transport, UpgradeRequestHead head, IHeaderDictionary responseHeaders)
    : IHttpWebSocketFeature, IKeepAliveStreamFeature
{
    // RFC 6455 1.3: the GUID appended to the client's key.
    private const string KeyGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    public bool IsWebSocketRequest => true;

    public KeepAliveStream? Stream { get; private set; }

    public async Task<WebSocket> AcceptAsync(WebSocketAcceptContext context)
    {
        if (Stream is not null)
        {
            throw new InvalidOperationException("The WebSocket was accepted already.");
        }

        if (context.DangerousEnableCompression)
        {
            // Never installed with compression on (Program.cs): permessage-deflate is ASP.NET Core's.
            throw new NotSupportedException("The direct upgrade does not negotiate compression.");
        }

        responseHeaders.Connection = "Upgrade";
        responseHeaders.Upgrade = "websocket";
        responseHeaders.SecWebSocketAccept = AcceptKey(head.Headers.SecWebSocketKey.ToString());
        if (context.SubProtocol is { } subprotocol)
        {
            responseHeaders.SecWebSocketProtocol = subprotocol;
        }

        await transport.WriteAsync(ResponseHead.Encode(StatusCodes.Status101SwitchingProtocols, responseHeaders, contentLength: null));
        Stream = new KeepAliveStream(transport.OpenStream());
        return WebSocket.CreateFromStream(Stream, new WebSocketCreationOptions
        {
            IsServer = true,
            SubProtocol = context.SubProtocol,
            KeepAliveInterval = TimeSpan.Zero,
        });
    }

    // RFC 6455 fixes SHA-1 here: it proves the server read the handshake, it protects nothing.
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350:Do Not Use Weak Cryptographic Algorithms", Justification = "RFC 6455 4.2.2 defines Sec-WebSocket-Accept with SHA-1.")]
    internal static string AcceptKey(string key)
    {
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(Encoding.ASCII.GetBytes(key + KeyGuid), hash);
        return Convert.ToBase64String(hash);
    }
}

/// <summary>
/// Where a WebSocket's upgraded stream is a <see cref="KeepAliveStream"/>, so that the node's
/// keep-alive sweep pings it (both the Kestrel and the direct upgrade path provide one).
/// </summary>
internal interface IKeepAliveStreamFeature
{
    /// <summary>The upgraded stream, once the WebSocket was accepted.</summary>
    KeepAliveStream? Stream { get; }
}

/// <summary>An HTTP/1.1 response head written by the direct upgrade path itself.</summary>
internal static class ResponseHead
{
    public static byte[] Encode(int status, IHeaderDictionary headers, long? contentLength)
    {
        var head = new StringBuilder(256);
        head.Append("HTTP/1.1 ").Append(status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(' ').Append(Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status)).Append("\r\n");
        foreach (var (name, values) in headers)
        {
            foreach (var value in values)
            {
                // Our own headers never hold line breaks; one that did must not split the response.
                if (value is not null && value.AsSpan().IndexOfAny('\r', '\n') < 0)
                {
                    head.Append(name).Append(": ").Append(value).Append("\r\n");
                }
            }
        }

        if (contentLength is { } length)
        {
            // A refused handshake ends its connection, as Kestrel's own refusals after an upgrade request.
            head.Append("Content-Length: ").Append(length.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append("\r\nConnection: close\r\n");
        }

        return Encoding.ASCII.GetBytes(head.Append("\r\n").ToString());
    }
}
