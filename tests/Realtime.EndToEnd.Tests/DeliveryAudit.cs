using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// What clients received against what was published, per channel: the figures every failure
/// drill prints and asserts (published / delivered / lost / duplicates / out-of-order). Given
/// what the ingress topic holds (<see cref="Logged"/>), deliveries are checked against that log:
/// the pipeline owes each client exactly the log, in its order.
/// </summary>
public sealed class DeliveryAudit
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<int>> _published = new();
    private readonly ConcurrentDictionary<string, List<int>> _logged = new();
    private readonly ConcurrentDictionary<(string Subscriber, string Channel), ConcurrentQueue<(ulong Seq, int Data)>> _received = new();

    public void Published(string channel, int data) => _published.GetOrAdd(channel, _ => new()).Enqueue(data);

    /// <summary>The data of the channel's records in the ingress topic, in offset order.</summary>
    public void Logged(string channel, IEnumerable<int> data) => _logged[channel] = [.. data];

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
        long published = 0, delivered = 0, lost = 0, duplicates = 0, outOfOrder = 0, holes = 0, logDuplicates = 0;
        foreach (var (subscriber, channel) in subscriptions)
        {
            var expected = _published.TryGetValue(channel, out var p) ? p.ToList() : [];
            var got = _received.TryGetValue((subscriber, channel), out var r) ? r.ToList() : [];
            published += expected.Count;
            delivered += got.Count;
            duplicates += got.Count - got.Select(e => e.Seq).Distinct().Count();
            var data = got.Select(e => e.Data).ToList();
            lost += expected.Except(data).Count();
            if (_logged.TryGetValue(channel, out var logged))
            {
                // A record the log holds twice is delivered twice, in the log's order: its
                // sequence is the log's, so anything else is out of order.
                logDuplicates += logged.Count - logged.Distinct().Count();
                outOfOrder += Enumerable.Range(0, Math.Max(data.Count, logged.Count))
                    .Count(i => i >= data.Count || i >= logged.Count || data[i] != logged[i]);
            }
            else
            {
                // The data of one channel was published in increasing order.
                for (var i = 1; i < data.Count; i++)
                {
                    if (data[i] <= data[i - 1])
                    {
                        outOfOrder++;
                    }
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

        return new AuditReport(published, delivered, lost, duplicates, outOfOrder, holes, logDuplicates);
    }
}

/// <param name="Published">Events published to the subscribed channels, summed over subscriptions.</param>
/// <param name="Delivered">Events clients received, summed over subscriptions.</param>
/// <param name="Lost">Published events a subscriber never received.</param>
/// <param name="Duplicates">Deliveries of a sequence number the subscriber had already received.</param>
/// <param name="OutOfOrder">Deliveries that differ from the ingress log at their position (or, without a log, that are not in publishing order).</param>
/// <param name="SeqHoles">Consecutive deliveries whose sequence numbers are not consecutive.</param>
/// <param name="LogDuplicates">Records the ingress log holds more than once, counted per subscription: the broker wrote a retried produce twice.</param>
public sealed record AuditReport(long Published, long Delivered, long Lost, long Duplicates, long OutOfOrder, long SeqHoles, long LogDuplicates)
{
    public override string ToString() =>
        $"published={Published} delivered={Delivered} lost={Lost} duplicates={Duplicates} out-of-order={OutOfOrder} seq-holes={SeqHoles} log-duplicates={LogDuplicates}";
}
