using System.Threading.Channels;
using Realtime.Contracts.V1;
using Realtime.Gateway.Replay;

namespace Realtime.Gateway.Tests.Replay;

public sealed class LogReplayTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Pages_come_in_the_order_they_were_read_then_null()
    {
        await using var replay = new LogReplay(async (pages, stop) =>
        {
            for (var page = 0; page < 3; page++)
            {
                await pages.WriteAsync(Page(first: (ulong)(page * 10) + 1, count: 10), stop);
            }
        });

        var seqs = new List<ulong>();
        while (await replay.NextAsync(Token).AsTask().WaitAsync(Bound, Token) is { } page)
        {
            seqs.AddRange(page.Select(e => e.Seq));
        }

        Assert.Equal(Enumerable.Range(1, 30).Select(i => (ulong)i), seqs);
    }

    [Fact]
    public async Task A_refusal_after_some_pages_comes_after_those_pages()
    {
        await using var replay = new LogReplay(async (pages, stop) =>
        {
            await pages.WriteAsync(Page(first: 1, count: 5), stop);
            throw new ReplayRefusedException(ChannelHistory.BeyondRetention);
        });

        var first = await replay.NextAsync(Token).AsTask().WaitAsync(Bound, Token);
        Assert.Equal(5, first!.Count);
        var refused = await Assert.ThrowsAsync<ReplayRefusedException>(() => replay.NextAsync(Token).AsTask().WaitAsync(Bound, Token));
        Assert.Equal(ChannelHistory.BeyondRetention, refused.Reason);
    }

    [Fact]
    public async Task It_reads_one_page_ahead_and_disposing_it_stops_a_reading_that_waits_for_room()
    {
        var written = 0;
        var blocked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ended = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var replay = new LogReplay(async (pages, stop) =>
        {
            try
            {
                for (ulong page = 0; ; page++)
                {
                    var write = pages.WriteAsync(Page(first: (page * 10) + 1, count: 10), stop);
                    if (!write.IsCompleted)
                    {
                        blocked.TrySetResult();
                    }

                    await write;
                    Interlocked.Increment(ref written);
                }
            }
            catch (Exception e)
            {
                ended.TrySetResult(e);
                throw;
            }
        });

        // Nobody takes a page: one is held, the next waits for room, and nothing more is read.
        await blocked.Task.WaitAsync(Bound, Token);
        Assert.Equal(1, Volatile.Read(ref written));

        await replay.DisposeAsync().AsTask().WaitAsync(Bound, Token);
        var stoppedBy = await ended.Task.WaitAsync(Bound, Token);
        Assert.True(stoppedBy is OperationCanceledException or ChannelClosedException, stoppedBy?.GetType().Name);
        Assert.Equal(1, Volatile.Read(ref written));
    }

    private static List<ReplayedEvent> Page(ulong first, int count) =>
        Enumerable.Range(0, count).Select(i => new ReplayedEvent(first + (ulong)i, new EventEnvelope { Channel = "room:1" })).ToList();
}
