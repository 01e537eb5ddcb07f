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
    public async Task An_offset_repeated_within_one_batch_keeps_the_seq_it_got_in_that_batch()
    {
        var (work, records) = Batch("room:9", 0, 5, 6, 6, 7);
        await NewSequencer().SequenceAsync(work, records);
        Assert.Equal([1L, 2L, 2L, 3L], work[0].Seqs);
        Assert.Equal(3, await _connection!.GetDatabase().ListLengthAsync(_names.ChannelRecentKey("room:9")));
    }

    [Fact]
    public async Task Transient_events_get_no_seq_and_are_not_kept()
    {
        var db = _connection!.GetDatabase();
        var (work, records) = Batch("room:6", 0, 1, -2, 3);
        await NewSequencer().SequenceAsync(work, records);
        Assert.Equal([1L, 0L, 2L], work[0].Seqs);
        Assert.Equal(2, await db.ListLengthAsync(_names.ChannelRecentKey("room:6")));
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
    public async Task Channels_routed_to_the_same_nodes_share_one_sorted_targets_array()
    {
        var db = _connection!.GetDatabase();
        foreach (var node in new[] { "gw-a", "gw-b", "gw-c" })
        {
            await db.StringSetAsync(_names.NodeAliveKey(node), 1, TimeSpan.FromSeconds(30));
        }

        await db.SetAddAsync(_names.RouteKey("room:20"), ["gw-c", "gw-a", "gw-b"]);
        await db.SetAddAsync(_names.RouteKey("room:21"), ["gw-b", "gw-c", "gw-a"]);
        await db.SetAddAsync(_names.RouteKey("room:22"), ["gw-a", "gw-b"]);
        var work = new List<ChannelWork> { new("room:20", 0), new("room:21", 1), new("room:22", 2) };
        var records = new List<(long, byte[], bool)>();
        foreach (var channel in work)
        {
            channel.Records.Add(records.Count);
            records.Add((1, [1], false));
        }

        await NewSequencer().SequenceAsync(work, records);

        // The fanout batches deliveries per targets array: equal sets must be one instance.
        Assert.Equal(["gw-a", "gw-b", "gw-c"], work[0].Targets);
        Assert.Same(work[0].Targets, work[1].Targets);
        Assert.Equal(["gw-a", "gw-b"], work[2].Targets);
    }

    [Fact]
    public async Task The_recent_window_and_index_are_trimmed_to_their_limits()
    {
        var db = _connection!.GetDatabase();
        var (work, records) = Batch("room:3", 1, [.. Enumerable.Range(100, 30).Select(i => (long)i)]);
        await NewSequencer(recent: 10).SequenceAsync(work, records);

        // The window holds seqs 21-30, oldest first: the envelopes of offsets 120-129.
        var recent = await db.ListRangeAsync(_names.ChannelRecentKey("room:3"));
        Assert.Equal(Enumerable.Range(120, 10).Select(o => new byte[] { 1, 2, (byte)o }), recent.Select(e => (byte[])e!));
        Assert.Equal(30, await db.SortedSetLengthAsync(_names.ChannelIndexKey("room:3")));
        Assert.Equal(30, await db.SortedSetScoreAsync(_names.ChannelIndexKey("room:3"), 129));
    }

    [Fact]
    public async Task The_recent_window_ends_at_the_channel_seq_without_a_gap_even_after_its_state_was_lost()
    {
        var db = _connection!.GetDatabase();
        var sequencer = NewSequencer();
        var (first, records) = Batch("room:7", 0, 1, 2, 3);
        await sequencer.SequenceAsync(first, records);

        // Only the state goes (e.g. evicted); the worker carries the channel on from memory, and
        // the window must not keep seqs 1-3 in front of 4-5 as if nothing were missing.
        await db.KeyDeleteAsync(_names.ChannelStateKey("room:7"));
        var (next, nextRecords) = Batch("room:7", 0, 4, 5);
        await sequencer.SequenceAsync(next, nextRecords);
        Assert.Equal([4L, 5L], next[0].Seqs);
        Assert.Equal(5, (long)await db.HashGetAsync(_names.ChannelStateKey("room:7"), "seq"));
        var window = await db.ListRangeAsync(_names.ChannelRecentKey("room:7"));
        Assert.Equal([4, 5], window.Select(e => (int)((byte[])e!)[2]));
    }

    [Fact]
    public async Task Turning_the_recent_window_off_drops_it_so_turning_it_on_again_leaves_no_gap()
    {
        var db = _connection!.GetDatabase();
        var (first, records) = Batch("room:8", 0, 1, 2);
        await NewSequencer(recent: 10).SequenceAsync(first, records);
        var (off, offRecords) = Batch("room:8", 0, 3);
        await NewSequencer(recent: 0).SequenceAsync(off, offRecords);
        Assert.False(await db.KeyExistsAsync(_names.ChannelRecentKey("room:8")));

        var (on, onRecords) = Batch("room:8", 0, 4);
        await NewSequencer(recent: 10).SequenceAsync(on, onRecords);
        Assert.Equal([4L], on[0].Seqs);
        var window = await db.ListRangeAsync(_names.ChannelRecentKey("room:8"));
        Assert.Equal([4], window.Select(e => (int)((byte[])e!)[2]));
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
