using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// What clients received against what was published, per channel: the figures every failure
/// drill prints and asserts (published / delivered / lost / duplicates / out-of-order).
/// </summary>
public sealed class DeliveryAudit
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<int>> _published = new();
    private readonly ConcurrentDictionary<(string Subscriber, string Channel), ConcurrentQueue<(ulong Seq, int Data)>> _received = new();

    public void Published(string channel, int data) => _published.GetOrAdd(channel, _ => new()).Enqueue(data);

    public void Received(string subscriber, JsonObject frame) =>
        _received.GetOrAdd((subscriber, (string)frame["channel"]!), _ => new()).Enqueue(((ulong)frame["seq"]!, (int)frame["data"]!));

    /// <summary>Events a subscriber of the channel still waits for.</summary>
    public int Missing(string subscriber, string channel)
    {
        var expected = _published.TryGetValue(channel, out var p) ? p.Count : 0;
        var got = _received.TryGetValue((subscriber, channel), out var r) ? r.Select(e => e.Data).Distinct().Count() : 0;
        return expected - got;
    }

    public AuditReport Report(IEnumerable<(string Subscriber, string Channel)> subscriptions)
    {
        long published = 0, delivered = 0, lost = 0, duplicates = 0, outOfOrder = 0, holes = 0;
        foreach (var (subscriber, channel) in subscriptions)
        {
            var expected = _published.TryGetValue(channel, out var p) ? p.ToList() : [];
            var got = _received.TryGetValue((subscriber, channel), out var r) ? r.ToList() : [];
            published += expected.Count;
            delivered += got.Count;
            duplicates += got.Count - got.Select(e => e.Seq).Distinct().Count();
            var data = got.Select(e => e.Data).ToList();
            lost += expected.Except(data).Count();
            // Order: the data of one channel was published in increasing order.
            for (var i = 1; i < data.Count; i++)
            {
                if (data[i] <= data[i - 1])
                {
                    outOfOrder++;
                }
            }

            for (var i = 1; i < got.Count; i++)
            {
                if (got[i].Seq != got[i - 1].Seq + 1)
                {
                    holes++;
                }
            }
        }

        return new AuditReport(published, delivered, lost, duplicates, outOfOrder, holes);
    }
}

public sealed record AuditReport(long Published, long Delivered, long Lost, long Duplicates, long OutOfOrder, long SeqHoles)
{
    public override string ToString() =>
        $"published={Published} delivered={Delivered} lost={Lost} duplicates={Duplicates} out-of-order={OutOfOrder} seq-holes={SeqHoles}";
}
