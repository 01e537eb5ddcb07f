using System.Reflection;
using System.Runtime.InteropServices;

namespace Realtime.EmbeddedKafka;

/// <summary>
/// P/Invoke bindings of librdkafka's mock-cluster API (<c>rdkafka_mock.h</c> of librdkafka.redist
/// 2.16.0), resolved to the very native library file Confluent.Kafka loads on Linux x64, so both
/// share one librdkafka instance.
/// </summary>
/// <remarks>
/// Signatures follow the C header exactly: <c>int</c> is <c>int</c>, <c>int32_t</c> is
/// <see cref="int"/>, <c>int16_t</c> is <see cref="short"/>, <c>size_t</c> is <see cref="nuint"/>,
/// <c>rd_kafka_resp_err_t</c> (a C enum) is <see cref="int"/>. Functions the header declares
/// <c>void</c> are bound as <c>void</c>: reading a return value they never set would yield garbage.
/// </remarks>
internal static partial class NativeMock
{
    private const string Library = "realtime-embedded-librdkafka";

    /// <summary><c>RD_KAFKA_PRODUCER</c> of <c>rd_kafka_type_t</c>.</summary>
    public const int ProducerType = 0;

    /// <summary><c>RD_KAFKA_CONF_OK</c> of <c>rd_kafka_conf_res_t</c>.</summary>
    public const int ConfOk = 0;

    // A static constructor guarantees the resolver is registered before any P/Invoke stub of this
    // class runs (there is exactly one per assembly; nothing else in this assembly sets one).
    static NativeMock() => NativeLibrary.SetDllImportResolver(typeof(NativeMock).Assembly, Resolve);

    /// <summary>Where librdkafka was looked for (for error messages).</summary>
    private static IEnumerable<string> SearchDirectories()
    {
        yield return Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        var assemblyDirectory = Path.GetDirectoryName(typeof(NativeMock).Assembly.Location);
        if (!string.IsNullOrEmpty(assemblyDirectory))
        {
            yield return Path.Combine(assemblyDirectory, "runtimes", "linux-x64", "native");
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != Library)
        {
            return IntPtr.Zero;
        }

        var tried = new List<string>();
        foreach (var directory in SearchDirectories().Distinct(StringComparer.Ordinal))
        {
            // Confluent.Kafka picks centos8-librdkafka.so on glibc Linux x64 (Debian 12 included).
            foreach (var file in (ReadOnlySpan<string>)["centos8-librdkafka.so", "librdkafka.so"])
            {
                var path = Path.Combine(directory, file);
                tried.Add(path);
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out var handle))
                {
                    return handle;
                }
            }
        }

        throw new DllNotFoundException(
            $"librdkafka (linux-x64) not found or not loadable; tried {string.Join(", ", tried)}. " +
            "The embedded Kafka broker needs the librdkafka.redist package that Confluent.Kafka brings.");
    }

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_new")]
    public static partial IntPtr ConfNew();

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_destroy")]
    public static partial void ConfDestroy(IntPtr conf);

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ConfSet(IntPtr conf, string name, string value, byte[] errstr, nuint errstrSize);

    /// <summary><c>rd_kafka_new</c>: takes ownership of <paramref name="conf"/> on success only.</summary>
    [LibraryImport(Library, EntryPoint = "rd_kafka_new")]
    public static partial IntPtr KafkaNew(int type, IntPtr conf, byte[] errstr, nuint errstrSize);

    [LibraryImport(Library, EntryPoint = "rd_kafka_destroy")]
    public static partial void KafkaDestroy(IntPtr rk);

    [LibraryImport(Library, EntryPoint = "rd_kafka_err2name")]
    public static partial IntPtr ErrorName(int error);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_new")]
    public static partial IntPtr ClusterNew(IntPtr rk, int brokerCount);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_destroy")]
    public static partial void ClusterDestroy(IntPtr cluster);

    /// <summary>Returns a string owned by the cluster (valid until it is destroyed).</summary>
    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_cluster_bootstraps")]
    public static partial IntPtr ClusterBootstraps(IntPtr cluster);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_topic_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int TopicCreate(IntPtr cluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_topic_set_error", StringMarshalling = StringMarshalling.Utf8)]
    public static partial void TopicSetError(IntPtr cluster, string topic, int error);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_set_controller_id")]
    public static partial void SetControllerId(IntPtr cluster, int controllerId);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_group_initial_rebalance_delay_ms")]
    public static partial void GroupInitialRebalanceDelayMs(IntPtr cluster, int delayMs);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_set_group_consumer_heartbeat_interval_ms")]
    public static partial void SetGroupConsumerHeartbeatIntervalMs(IntPtr cluster, int intervalMs);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_set_group_consumer_session_timeout_ms")]
    public static partial void SetGroupConsumerSessionTimeoutMs(IntPtr cluster, int timeoutMs);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_down")]
    public static partial int BrokerSetDown(IntPtr cluster, int brokerId);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_up")]
    public static partial int BrokerSetUp(IntPtr cluster, int brokerId);

    /// <summary>Changes only what Metadata advertises; the broker keeps listening where it did.</summary>
    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_broker_set_host_port", StringMarshalling = StringMarshalling.Utf8)]
    public static partial void BrokerSetHostPort(IntPtr cluster, int brokerId, string host, int port);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_partition_set_leader", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int PartitionSetLeader(IntPtr cluster, string topic, int partition, int brokerId);

    [LibraryImport(Library, EntryPoint = "rd_kafka_mock_push_request_errors_array")]
    public static partial void PushRequestErrorsArray(IntPtr cluster, short apiKey, nuint count, int[] errors);

    /// <summary>The librdkafka name of an error code, e.g. <c>TOPIC_ALREADY_EXISTS</c>.</summary>
    public static string Name(int error) =>
        Marshal.PtrToStringUTF8(ErrorName(error)) ?? error.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
