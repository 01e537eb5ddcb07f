using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using StackExchange.Redis;

namespace Realtime.Hosting;

public static class PipelineServiceCollectionExtensions
{
    /// <summary>
    /// Registers what every process needs: validated Kafka, Redis and pipeline options, the
    /// topic and key names, one Redis multiplexer and the topic provisioner.
    /// </summary>
    public static IServiceCollection AddPipelineCore(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<KafkaOptions>().Bind(configuration.GetSection(KafkaOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<RedisOptions>().Bind(configuration.GetSection(RedisOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<PipelineOptions>().Bind(configuration.GetSection(PipelineOptions.Section)).ValidateDataAnnotations().ValidateOnStart();

        services.AddSingleton(sp => new PipelineNames(sp.GetRequiredService<IOptions<PipelineOptions>>().Value.Namespace));
        services.AddSingleton<IConnectionMultiplexer>(sp =>
        {
            var redis = ConfigurationOptions.Parse(sp.GetRequiredService<IOptions<RedisOptions>>().Value.Configuration);
            // Start even while Redis is down and keep reconnecting: routes are re-registered when it is back.
            redis.AbortOnConnectFail = false;
            redis.ClientName ??= "realtime";
            return ConnectionMultiplexer.Connect(redis);
        });
        services.AddSingleton<TopicProvisioner>();
        return services;
    }
}
