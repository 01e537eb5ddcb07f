using System.Threading.Channels;

namespace Realtime.Gateway.Replay;

/// <summary>The log no longer holds events a replay had started on (retention passed them meanwhile).</summary>
internal sealed class ReplayRefusedException(string reason) : Exception($"Replay refused: {reason}.")
{
    /// <summary>The <c>resync</c> reason to give the client.</summary>
    public string Reason { get; } = reason;
}

/// <summary>
/// A replay from the ingress log, a page at a time: one page is read ahead while the one before
/// it is sent, so reading the log and writing to the client overlap, and a long replay holds two
/// pages in memory, never the whole range. Dispose it whether or not it was read to the end:
/// that stops the reading.
/// </summary>
internal sealed class LogReplay : IAsyncDisposable
{
    private readonly Channel<List<ReplayedEvent>> _pages = Channel.CreateBounded<List<ReplayedEvent>>(
        new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reading;

    /// <param name="read">Reads the pages in order into the writer it is given; throws <see cref="ReplayRefusedException"/> when the log no longer has them.</param>
    public LogReplay(Func<ChannelWriter<List<ReplayedEvent>>, CancellationToken, Task> read)
    {
        var token = _stop.Token;
        _reading = Task.Run(async () =>
        {
            try
            {
                await read(_pages.Writer, token);
                _pages.Writer.TryComplete();
            }
            catch (Exception e)
            {
                _pages.Writer.TryComplete(e);
            }
        }, CancellationToken.None);
    }

    /// <summary>
    /// The next page, in order; null after the last one. Throws what stopped the reading:
    /// <see cref="ReplayRefusedException"/>, or a <see cref="TimeoutException"/> or
    /// <see cref="StackExchange.Redis.RedisException"/> when the log or its index could not be read.
    /// </summary>
    public async ValueTask<List<ReplayedEvent>?> NextAsync(CancellationToken cancellationToken) =>
        // A channel completed with an error throws that error from WaitToReadAsync.
        await _pages.Reader.WaitToReadAsync(cancellationToken) && _pages.Reader.TryRead(out var page) ? page : null;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        // Unblocks a reader waiting for room; what it still held is garbage.
        _pages.Writer.TryComplete();
        await _reading.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }
}
