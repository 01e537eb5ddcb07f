using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Realtime.EndToEnd.Tests;

/// <summary>Bits of the WebSocket wire format for tests that must misbehave below what ClientWebSocket allows.</summary>
internal static class RawWebSocket
{
    /// <summary>A TCP connection to the gateway that has sent a WebSocket handshake (its answer is left unread).</summary>
    public static async Task<TcpClient> OpenAsync(GatewayNode gateway, string token, int? receiveBufferSize = null)
    {
        var tcp = new TcpClient();
        if (receiveBufferSize is { } size)
        {
            tcp.ReceiveBufferSize = size;
        }

        await tcp.ConnectAsync(gateway.Http.Host, gateway.Http.Port);
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        await tcp.GetStream().WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /ws HTTP/1.1\r\nHost: {gateway.Http.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"));
        return tcp;
    }

    public static byte[] MaskedTextFrame(string text) => MaskedFrame(0x1, Encoding.UTF8.GetBytes(text));

    /// <summary>A final client frame (masked, as RFC 6455 requires of clients) with <paramref name="opcode"/>.</summary>
    public static byte[] MaskedFrame(byte opcode, byte[] payload)
    {
        var mask = RandomNumberGenerator.GetBytes(4);
        var frame = new List<byte> { (byte)(0x80 | opcode) };
        if (payload.Length < 126)
        {
            frame.Add((byte)(0x80 | payload.Length));
        }
        else
        {
            frame.Add(0x80 | 126);
            frame.Add((byte)(payload.Length >> 8));
            frame.Add((byte)payload.Length);
        }

        frame.AddRange(mask);
        frame.AddRange(payload.Select((b, i) => (byte)(b ^ mask[i % 4])));
        return [.. frame];
    }

    /// <summary>Reads the handshake's answer up to its blank line and not a byte further; returns it.</summary>
    public static async Task<string> ReadHandshakeAsync(NetworkStream stream, TimeSpan timeout)
    {
        var seen = new StringBuilder();
        var one = new byte[1];
        using var cancellation = new CancellationTokenSource(timeout);
        while (!seen.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            await stream.ReadExactlyAsync(one, cancellation.Token);
            seen.Append((char)one[0]);
        }

        return seen.ToString();
    }

    /// <summary>Reads one whole server frame (unmasked): its opcode and payload.</summary>
    public static async Task<(int Opcode, byte[] Payload)> ReadFrameAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        var header = new byte[2];
        await stream.ReadExactlyAsync(header, cancellationToken);
        long length = header[1] & 0x7F;
        if (length >= 126)
        {
            var extended = new byte[length == 126 ? 2 : 8];
            await stream.ReadExactlyAsync(extended, cancellationToken);
            length = extended.Aggregate(0L, (value, b) => (value << 8) | b);
        }

        var payload = new byte[length];
        await stream.ReadExactlyAsync(payload, cancellationToken);
        return (header[0] & 0x0F, payload);
    }

    /// <summary>Reads raw bytes until <paramref name="marker"/> shows up; returns what was read (as Latin-1 text).</summary>
    public static Task<string> ReadTextAsync(NetworkStream stream, string marker, TimeSpan timeout) =>
        ReadTextUntilAsync(stream, seen => seen.Contains(marker, StringComparison.Ordinal), timeout);

    /// <summary>Reads until what was read so far satisfies <paramref name="done"/> (or the stream ends); returns all of it.</summary>
    public static async Task<string> ReadTextUntilAsync(NetworkStream stream, Func<string, bool> done, TimeSpan timeout)
    {
        var seen = new StringBuilder();
        var buffer = new byte[64 * 1024];
        using var cancellation = new CancellationTokenSource(timeout);
        while (!done(seen.ToString()))
        {
            var read = await stream.ReadAsync(buffer, cancellation.Token);
            if (read == 0)
            {
                break;
            }

            seen.Append(Encoding.Latin1.GetString(buffer, 0, read));
        }

        return seen.ToString();
    }

    public static long ResidentMegabytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
    }
}
