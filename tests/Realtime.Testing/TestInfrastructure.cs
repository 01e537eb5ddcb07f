using System.Security.Cryptography;
using System.Text;
using Xunit;

namespace Realtime.Testing;

/// <summary>
/// The shared infrastructure of one test assembly: one Kafka-protocol broker and one
/// <c>redis-server</c>, started once and stopped at the end.
/// </summary>
/// <remarks>
/// <para>Use it as an xunit v3 assembly fixture and take it in test class constructors:</para>
/// <code>
/// [assembly: AssemblyFixture(typeof(TestInfrastructure))]
/// public sealed class MyTests(TestInfrastructure infrastructure) { ... }
/// </code>
/// <para>
/// Tests share the broker and Redis and isolate themselves with <see cref="NewNamespace"/>:
/// every topic, group and key of a <c>PipelineNames</c> built from it is its own.
/// </para>
/// </remarks>
public sealed class TestInfrastructure : IAsyncLifetime
{
    /// <summary>Longest namespace <see cref="NewNamespace"/> returns.</summary>
    public const int MaxNamespaceLength = 40;

    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    private const int RandomLength = 6;
    private readonly HashSet<string> _namespaces = [];
    private readonly Lock _gate = new();
    private KafkaBroker? _kafka;
    private RedisServer? _redis;

    /// <summary>The Kafka broker of the test run.</summary>
    public KafkaBroker Kafka => _kafka ?? throw new InvalidOperationException("TestInfrastructure is not initialized.");

    /// <summary>The <c>redis-server</c> of the test run.</summary>
    public RedisServer Redis => _redis ?? throw new InvalidOperationException("TestInfrastructure is not initialized.");

    /// <summary>Acquires the broker and starts Redis, concurrently.</summary>
    public async ValueTask InitializeAsync()
    {
        var kafka = KafkaBroker.AcquireAsync();
        var redis = RedisServer.StartAsync();
        try
        {
            await Task.WhenAll(kafka, redis);
        }
        catch
        {
            if (kafka.IsCompletedSuccessfully)
            {
                await kafka.Result.DisposeAsync();
            }

            if (redis.IsCompletedSuccessfully)
            {
                await redis.Result.DisposeAsync();
            }

            throw;
        }

        _kafka = kafka.Result;
        _redis = redis.Result;
    }

    /// <summary>
    /// A namespace no other test of this run (nor, practically, of any other run sharing the
    /// broker) uses: <c>t&lt;6 random [a-z0-9]&gt;-&lt;hint&gt;</c>, only <c>[a-z0-9-]</c>, at most
    /// <see cref="MaxNamespaceLength"/> characters. The hint is lower-cased, other characters
    /// become <c>-</c>, and it is shortened to fit.
    /// </summary>
    public string NewNamespace(string hint)
    {
        var suffix = Clean(hint);
        while (true)
        {
            var prefix = "t" + RandomNumberGenerator.GetString(Alphabet, RandomLength);
            var name = suffix.Length == 0 ? prefix : $"{prefix}-{suffix}";
            if (name.Length > MaxNamespaceLength)
            {
                name = name[..MaxNamespaceLength].TrimEnd('-');
            }

            lock (_gate)
            {
                if (_namespaces.Add(name))
                {
                    return name;
                }
            }
        }
    }

    /// <summary>Stops Redis and releases the broker.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }

        if (_kafka is not null)
        {
            await _kafka.DisposeAsync();
        }
    }

    private static string Clean(string? hint)
    {
        var text = new StringBuilder();
        foreach (var c in (hint ?? string.Empty).ToLowerInvariant())
        {
            var mapped = c is (>= 'a' and <= 'z') or (>= '0' and <= '9') ? c : '-';
            if (mapped != '-' || (text.Length > 0 && text[^1] != '-'))
            {
                text.Append(mapped);
            }
        }

        return text.ToString().Trim('-');
    }
}
