using System.Net;
using System.Net.Sockets;
using Realtime.Gateway.Connections.Upgrade;

namespace Realtime.Gateway.Tests.Connections.Upgrade;

/// <summary>The stream a direct WebSocket runs on straight over its socket, on a real loopback TCP connection.</summary>
public sealed class SocketStreamTests : DuplexStreamContract, IAsyncLifetime
{
    private Socket _ours = null!;
    private Socket _peer = null!;

    public async ValueTask InitializeAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        _peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accepting = listener.AcceptAsync(TestContext.Current.CancellationToken).AsTask();
        await _peer.ConnectAsync(listener.LocalEndPoint!, TestContext.Current.CancellationToken);
        _ours = await accepting.WaitAsync(Bound, TestContext.Current.CancellationToken);
        // As DirectSocketTransport leaves the sockets it keeps.
        _ours.Blocking = false;
    }

    public ValueTask DisposeAsync()
    {
        _ours.Dispose();
        _peer.Dispose();
        return ValueTask.CompletedTask;
    }

    private protected override DuplexStream Stream() => new SocketStream(_ours);

    protected override async ValueTask SendFromPeerAsync(byte[] bytes) => await _peer.SendAsync(bytes, TestContext.Current.CancellationToken);

    protected override ValueTask CloseFromPeerAsync()
    {
        _peer.Shutdown(SocketShutdown.Send);
        return ValueTask.CompletedTask;
    }

    protected override async ValueTask<byte[]> ReceiveAtPeerAsync(int count)
    {
        var bytes = new byte[count];
        using var timeout = new CancellationTokenSource(Bound);
        for (var total = 0; total < count;)
        {
            var read = await _peer.ReceiveAsync(bytes.AsMemory(total), timeout.Token);
            Assert.NotEqual(0, read);
            total += read;
        }

        return bytes;
    }

    [Fact]
    public async Task A_write_larger_than_the_kernel_takes_at_once_completes_in_order_as_the_peer_reads()
    {
        // A small send buffer; the peer's receive window grows only as it reads.
        _ours.SendBufferSize = 4096;
        using var stream = Stream();
        var sent = new byte[8 * 1024 * 1024];
        for (var i = 0; i < sent.Length; i++)
        {
            sent[i] = (byte)(i * 7);
        }

        // The plain send takes what fits; the rest waits for the peer to read.
        var writing = stream.WriteAsync(sent, TestContext.Current.CancellationToken).AsTask();
        Assert.False(writing.IsCompleted);

        Assert.Equal(sent, await ReceiveAtPeerAsync(sent.Length));
        await writing.WaitAsync(Bound, TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Disposing_closes_the_connection_and_later_writes_are_refused()
    {
        var stream = Stream();
        await stream.DisposeAsync();

        Assert.Equal(0, await _peer.ReceiveAsync(new byte[4], TestContext.Current.CancellationToken).AsTask().WaitAsync(Bound, TestContext.Current.CancellationToken));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.WriteAsync(new byte[] { 1 }, TestContext.Current.CancellationToken).AsTask());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.ReadAsync(new byte[1], TestContext.Current.CancellationToken).AsTask());
    }

    [Fact]
    public async Task A_reset_by_the_peer_is_an_io_exception()
    {
        using var stream = Stream();
        var reading = stream.ReadAsync(new byte[4], TestContext.Current.CancellationToken).AsTask();
        _peer.LingerState = new LingerOption(true, 0);
        _peer.Close();

        var error = await Assert.ThrowsAsync<IOException>(() => reading.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.IsType<SocketException>(error.InnerException);
    }
}
