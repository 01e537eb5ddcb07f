using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Fanout.Routing;
using Realtime.Testing;
using StackExchange.Redis;

namespace Realtime.Fanout.Tests.Routing;

/// <summary>The sequencer script against a real redis-server.</summary>
public sealed class ChannelSequencerTests : IAsyncLifetime
{
    private RedisServer? _redis;
    private ConnectionMultiplexer? _connection;
    private readonly PipelineNames _names = new($"seq{Guid.NewGuid():N}"[..20]);

    public async ValueTask InitializeAsync()
    {
        _redis = await RedisServer.StartAsync(TestContext.Current.CancellationToken);
        _connection = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true");
    }

    public async ValueTask DisposeAsync()
    {
        _connection?.Dispose();
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }
    }

    private ChannelSequencer NewSequencer(int recent = 100) =>
        new(_connection!, _names, Options.Create(new FanoutOptions { RecentEventsPerChannel = recent, IndexedEventsPerChannel = 1_000 }), TimeProvider.System);

    private static (List<ChannelWork> Work, List<(long, byte[], bool)> Records) Batch(string channel, int partition, params long[] offsets)
    {
        var work = new ChannelWork(channel, partition);
        var records = new List<(long, byte[], bool)>();
        foreach (var offset in offsets)
        {
            work.Records.Add(records.Count);
            // Negative offsets in these tests stand for transient events at -offset.
            records.Add((Math.Abs(offset), [1, 2, (byte)Math.Abs(offset)], offset < 0));
        }

        return ([work], records);
    }

    [Fact]
    public async Task New_events_get_the_next_seqs_and_reprocessed_events_keep_theirs()
    {
        var sequencer = NewSequencer();
        var (first, records) = Batch("room:1", 3, 10, 11, 12);
        await sequencer.SequenceAsync(first, records);
        Assert.Equal([1L, 2L, 3L], first[0].Seqs);
        var epoch = first[0].Epoch;
        Assert.False(string.IsNullOrEmpty(epoch));

        // A worker that died after writing re-reads 11 and 12, then goes on with 13.
        var (again, againRecords) = Batch("room:1", 3, 11, 12, 13);
        await NewSequencer().SequenceAsync(again, againRecords);
        Assert.Equal([2L, 3L, 4L], again[0].Seqs);
        Assert.Equal(epoch, again[0].Epoch);
    }

    [Fact]
    public async Task Transient_events_get_no_seq_and_are_not_kept()
    {
        var db = _connection!.GetDatabase();
        var (work, records) = Batch("room:6", 0, 1, -2, 3);
        await NewSequencer().SequenceAsync(work, records);
        Assert.Equal([1L, 0L, 2L], work[0].Seqs);
        Assert.Equal(2, await db.SortedSetLengthAsync(_names.ChannelRecentKey("room:6")));
        Assert.Null(await db.SortedSetScoreAsync(_names.ChannelIndexKey("room:6"), 2));
    }

    [Fact]
    public async Task Routes_are_read_atomically_with_sequencing_and_dead_nodes_are_skipped()
    {
        var db = _connection!.GetDatabase();
        await db.SetAddAsync(_names.RouteKey("room:2"), ["gw-a", "gw-dead"]);
        await db.StringSetAsync(_names.NodeAliveKey("gw-a"), 1, TimeSpan.FromSeconds(30));

        var (work, records) = Batch("room:2", 0, 5);
        await NewSequencer().SequenceAsync(work, records);
        Assert.Equal(["gw-a"], work[0].Targets);
    }

    [Fact]
    public async Task The_recent_window_and_index_are_trimmed_to_their_limits()
    {
        var db = _connection!.GetDatabase();
        var (work, records) = Batch("room:3", 1, [.. Enumerable.Range(100, 30).Select(i => (long)i)]);
        await NewSequencer(recent: 10).SequenceAsync(work, records);

        var recent = await db.SortedSetRangeByScoreWithScoresAsync(_names.ChannelRecentKey("room:3"));
        Assert.Equal(Enumerable.Range(21, 10).Select(i => (double)i), recent.Select(e => e.Score));
        var newest = (byte[])recent[^1].Element!;
        Assert.Equal("129|"u8.ToArray().Concat(new byte[] { 1, 2, 129 }), newest);
        Assert.Equal(30, await db.SortedSetLengthAsync(_names.ChannelIndexKey("room:3")));
        Assert.Equal(30, await db.SortedSetScoreAsync(_names.ChannelIndexKey("room:3"), 129));
    }

    [Fact]
    public async Task After_redis_loses_a_channel_the_same_worker_continues_it_in_the_same_epoch()
    {
        var sequencer = NewSequencer();
        var (first, records) = Batch("room:5", 0, 1, 2, 3);
        await sequencer.SequenceAsync(first, records);
        var epoch = first[0].Epoch;

        await _connection!.GetDatabase().ExecuteAsync("FLUSHALL");

        var (next, nextRecords) = Batch("room:5", 0, 4, 5);
        await sequencer.SequenceAsync(next, nextRecords);
        Assert.Equal(epoch, next[0].Epoch);
        Assert.Equal([4L, 5L], next[0].Seqs);

        // A worker without that memory starts a new epoch: clients will be told to resync.
        await _connection!.GetDatabase().ExecuteAsync("FLUSHALL");
        var (fresh, freshRecords) = Batch("room:5", 0, 6);
        await NewSequencer().SequenceAsync(fresh, freshRecords);
        Assert.NotEqual(epoch, fresh[0].Epoch);
        Assert.Equal([1L], fresh[0].Seqs);
    }

    [Fact]
    public async Task A_position_handed_out_before_the_first_event_keeps_its_epoch()
    {
        var db = _connection!.GetDatabase();
        await db.HashSetAsync(_names.ChannelStateKey("room:4"), "epoch", "early");
        var (work, records) = Batch("room:4", 2, 0);
        await NewSequencer().SequenceAsync(work, records);
        Assert.Equal("early", work[0].Epoch);
        Assert.Equal([1L], work[0].Seqs);
    }
}
