using System.Buffers;
using System.Text;
using Realtime.Gateway.Connections.Upgrade;

namespace Realtime.Gateway.Tests.Connections.Upgrade;

public sealed class UpgradeRequestHeadTests
{
    private const int MaxHead = 16 * 1024;
    private const int MaxRequestLine = 8 * 1024;

    private const string Handshake =
        "GET /ws?access_token=abc&x=1 HTTP/1.1\r\n" +
        "Host: 127.0.0.1:8080\r\n" +
        "Upgrade: websocket\r\n" +
        "Connection: keep-alive, Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
        "Sec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Protocol: realtime.v1.proto, realtime.v1.json\r\n" +
        "Origin: http://127.0.0.1:8080\r\n" +
        "\r\n";

    private static UpgradeHeadStatus Read(string text, out UpgradeRequestHead? head, out long consumed, int maxHead = MaxHead, int maxRequestLine = MaxRequestLine)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(text));
        var status = UpgradeRequestHead.TryRead(buffer, "/ws", maxHead, maxRequestLine, out head, out var position);
        consumed = buffer.Slice(0, position).Length;
        return status;
    }

    [Fact]
    public void A_plain_handshake_is_taken_with_its_target_and_headers_and_ends_where_the_head_ends()
    {
        var status = Read(Handshake + "\x81\x80", out var head, out var consumed);

        Assert.Equal(UpgradeHeadStatus.Handled, status);
        Assert.Equal(Handshake.Length, consumed);
        Assert.Equal("/ws", head!.Path);
        Assert.Equal("?access_token=abc&x=1", head.QueryString);
        Assert.Equal("127.0.0.1:8080", head.Headers.Host.ToString());
        Assert.Equal("realtime.v1.proto, realtime.v1.json", head.Headers.SecWebSocketProtocol.ToString());
        Assert.Equal("http://127.0.0.1:8080", head.Headers.Origin.ToString());
    }

    [Fact]
    public void A_head_split_across_segments_reads_the_same()
    {
        var bytes = Encoding.ASCII.GetBytes(Handshake);
        var first = new Segment(bytes.AsMemory(0, 50));
        var last = first.Append(bytes.AsMemory(50));
        var buffer = new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);

        var status = UpgradeRequestHead.TryRead(buffer, "/ws", MaxHead, MaxRequestLine, out var head, out var position);

        Assert.Equal(UpgradeHeadStatus.Handled, status);
        Assert.Equal(buffer.End, position);
        Assert.Equal("?access_token=abc&x=1", head!.QueryString);
    }

    [Theory]
    [InlineData("G")]
    [InlineData("GET /w")]
    [InlineData("GET /ws?a=1 HTTP/1.1\r\nHost: x\r\n")]
    public void A_prefix_of_a_handshake_asks_for_more(string text) =>
        Assert.Equal(UpgradeHeadStatus.Incomplete, Read(text, out _, out _));

    [Theory]
    [InlineData("POST /ws HTTP/1.1\r\n")]
    [InlineData("GET /healthz HTTP/1.1\r\n\r\n")]
    [InlineData("GET /wss HTTP/1.1\r\n")]
    [InlineData("PRI * HTTP/2.0\r\n\r\n")]
    [InlineData("\x16\x03\x01")]
    public void Any_other_request_goes_to_kestrel_as_soon_as_its_first_bytes_show_it(string text) =>
        Assert.Equal(UpgradeHeadStatus.NotHandled, Read(text, out _, out _));

    [Theory]
    [InlineData("GET /ws/x HTTP/1.1", "")]
    [InlineData("GET /ws HTTP/1.0", "")]
    [InlineData("GET /ws?a b HTTP/1.1", "")]
    [InlineData("GET /ws HTTP/1.1", "Host: other\r\n")]
    [InlineData("GET /ws HTTP/1.1", "Content-Length: 5\r\n")]
    [InlineData("GET /ws HTTP/1.1", "Transfer-Encoding: chunked\r\n")]
    [InlineData("GET /ws HTTP/1.1", "X-Folded: a\r\n b\r\n")]
    [InlineData("GET /ws HTTP/1.1", "Bad Name: a\r\n")]
    [InlineData("GET /ws HTTP/1.1", ": empty name\r\n")]
    [InlineData("GET /ws HTTP/1.1", "X-Bare-CR: a\rb\r\n")]
    [InlineData("GET /ws HTTP/1.1", "X-Latin: \u00e9\r\n")]
    public void A_handshake_that_is_not_plain_and_well_formed_goes_to_kestrel(string requestLine, string extraHeaders)
    {
        var text = requestLine + "\r\n" + Handshake[(Handshake.IndexOf('\n') + 1)..^2] + extraHeaders + "\r\n";
        Assert.Equal(UpgradeHeadStatus.NotHandled, Read(text, out _, out _));
    }

    [Theory]
    [InlineData("Upgrade: websocket\r\n", "")]
    [InlineData("Connection: keep-alive, Upgrade\r\n", "Connection: keep-alive\r\n")]
    [InlineData("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 8\r\n")]
    [InlineData("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Sec-WebSocket-Key: c2hvcnQ=\r\n")]
    [InlineData("Host: 127.0.0.1:8080\r\n", "")]
    public void A_request_missing_what_a_websocket_handshake_needs_goes_to_kestrel(string header, string replacement) =>
        Assert.Equal(UpgradeHeadStatus.NotHandled, Read(Handshake.Replace(header, replacement, StringComparison.Ordinal), out _, out _));

    [Fact]
    public void A_head_larger_than_the_limit_goes_to_kestrel_which_answers_it()
    {
        var large = Handshake.Replace("\r\n\r\n", "\r\nX-Pad: " + new string('a', 300) + "\r\n\r\n", StringComparison.Ordinal);

        Assert.Equal(UpgradeHeadStatus.NotHandled, Read(large, out _, out _, maxHead: 256));
        Assert.Equal(UpgradeHeadStatus.Incomplete, Read(large[..200], out _, out _, maxHead: 256));
    }

    [Fact]
    public void A_request_line_longer_than_kestrel_allows_goes_to_kestrel_which_answers_414()
    {
        var longTarget = Handshake.Replace("x=1", "x=" + new string('a', 300), StringComparison.Ordinal);

        Assert.Equal(UpgradeHeadStatus.NotHandled, Read(longTarget, out _, out _, maxRequestLine: 256));
        Assert.Equal(UpgradeHeadStatus.NotHandled, Read(longTarget[..280], out _, out _, maxRequestLine: 256));
        Assert.Equal(UpgradeHeadStatus.Incomplete, Read(longTarget[..200], out _, out _, maxRequestLine: 256));
        Assert.Equal(UpgradeHeadStatus.Handled, Read(longTarget, out _, out _, maxRequestLine: 512));
    }

    [Fact]
    public void More_header_lines_than_kestrel_allows_go_to_kestrel()
    {
        var many = string.Concat(Enumerable.Range(0, UpgradeRequestHead.MaxHeaderCount).Select(i => $"X-{i}: v\r\n"));
        Assert.Equal(UpgradeHeadStatus.NotHandled, Read(Handshake.Replace("\r\n\r\n", "\r\n" + many + "\r\n", StringComparison.Ordinal), out _, out _));
    }

    [Fact]
    public void The_accept_key_is_the_one_rfc_6455_gives_for_its_sample_key() =>
        Assert.Equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", DirectWebSocketFeature.AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="));

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
