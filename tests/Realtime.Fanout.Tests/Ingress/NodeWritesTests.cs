using Realtime.Fanout.Ingress;

namespace Realtime.Fanout.Tests.Ingress;

public sealed class NodeWritesTests
{
    [Fact]
    public void Only_the_last_of_the_writes_completes_the_record()
    {
        var writes = new NodeWrites(3);

        Assert.False(writes.Acknowledge());
        Assert.False(writes.Acknowledge());
        Assert.True(writes.Acknowledge());
    }

    [Fact]
    public void A_record_with_a_write_never_acknowledged_never_completes()
    {
        // A failed write is not counted: the record's offsets must stay unacknowledged for the rewind.
        var writes = new NodeWrites(2);

        Assert.False(writes.Acknowledge());
    }

    [Fact]
    public void Acknowledgements_from_many_threads_complete_the_record_exactly_once()
    {
        const int Writes = 10_000;
        var writes = new NodeWrites(Writes);
        var completed = 0;

        Parallel.For(0, Writes, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            if (writes.Acknowledge())
            {
                Interlocked.Increment(ref completed);
            }
        });

        Assert.Equal(1, completed);
    }
}
