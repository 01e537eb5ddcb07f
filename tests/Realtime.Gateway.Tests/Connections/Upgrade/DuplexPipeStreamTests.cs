using System.Buffers;
using System.IO.Pipelines;
using Realtime.Gateway.Connections.Upgrade;

namespace Realtime.Gateway.Tests.Connections.Upgrade;

/// <summary>The stream a direct WebSocket runs on over a Kestrel connection's transport pipes.</summary>
public sealed class DuplexPipeStreamTests : DuplexStreamContract
{
    private readonly Pipe _fromPeer = new();
    private readonly Pipe _toPeer = new();

    private protected override DuplexStream Stream() => new DuplexPipeStream(new Transport(_fromPeer.Reader, _toPeer.Writer));

    protected override async ValueTask SendFromPeerAsync(byte[] bytes) => await _fromPeer.Writer.WriteAsync(bytes, TestContext.Current.CancellationToken);

    protected override ValueTask CloseFromPeerAsync() => _fromPeer.Writer.CompleteAsync();

    protected override async ValueTask<byte[]> ReceiveAtPeerAsync(int count)
    {
        var read = await _toPeer.Reader.ReadAtLeastAsync(count, TestContext.Current.CancellationToken);
        var bytes = read.Buffer.Slice(0, count).ToArray();
        _toPeer.Reader.AdvanceTo(read.Buffer.GetPosition(count));
        return bytes;
    }

    [Fact]
    public async Task A_read_after_disposal_is_refused()
    {
        var stream = Stream();
        await stream.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await stream.ReadExactlyAsync(new byte[4], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_write_after_the_transport_stopped_reading_fails()
    {
        using var stream = Stream();
        await _toPeer.Reader.CompleteAsync();

        await Assert.ThrowsAsync<IOException>(async () => await stream.WriteAsync(new byte[] { 1 }, TestContext.Current.CancellationToken));
    }

    private sealed class Transport(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
