using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Realtime.Hosting;

/// <summary>Routes librdkafka's log and error callbacks into <see cref="ILogger"/>.</summary>
public static partial class KafkaLogBridge
{
    public static ProducerBuilder<TKey, TValue> WithLogging<TKey, TValue>(this ProducerBuilder<TKey, TValue> builder, ILogger logger) =>
        builder
            .SetLogHandler((_, message) => OnLog(logger, message))
            .SetErrorHandler((_, error) => LogError(logger, error));

    public static ConsumerBuilder<TKey, TValue> WithLogging<TKey, TValue>(this ConsumerBuilder<TKey, TValue> builder, ILogger logger) =>
        builder
            .SetLogHandler((_, message) => OnLog(logger, message))
            .SetErrorHandler((_, error) => LogError(logger, error));

    public static AdminClientBuilder WithLogging(this AdminClientBuilder builder, ILogger logger) =>
        builder
            .SetLogHandler((_, message) => OnLog(logger, message))
            .SetErrorHandler((_, error) => LogError(logger, error));

    private static void OnLog(ILogger logger, LogMessage message)
    {
        var level = Map(message.Level);
        if (logger.IsEnabled(level))
        {
            LogKafka(logger, level, message.Facility, message.Message);
        }
    }

    private static void LogError(ILogger logger, Error error)
    {
        // Transient transport errors are retried by librdkafka; only fatal ones need a human.
        var level = error.IsFatal ? LogLevel.Critical : LogLevel.Warning;
        if (logger.IsEnabled(level))
        {
            var code = error.Code.ToString();
            LogKafka(logger, level, code, error.Reason);
        }
    }

    private static LogLevel Map(SyslogLevel level) => level switch
    {
        SyslogLevel.Emergency or SyslogLevel.Alert or SyslogLevel.Critical => LogLevel.Critical,
        SyslogLevel.Error => LogLevel.Error,
        SyslogLevel.Warning => LogLevel.Warning,
        SyslogLevel.Notice or SyslogLevel.Info => LogLevel.Information,
        _ => LogLevel.Debug,
    };

    [LoggerMessage(EventId = 100, Message = "librdkafka {Facility}: {KafkaMessage}")]
    private static partial void LogKafka(ILogger logger, LogLevel level, string facility, string kafkaMessage);
}
