using Google.Protobuf;
using Grpc.Core;
using Realtime.Contracts.V1;
using ServiceDescriptor = Google.Protobuf.Reflection.ServiceDescriptor;

namespace Realtime.Gateway.Grpc;

/// <summary>
/// Binds the gateway's gRPC services as their generated code does, except that a request whose
/// bytes are not the method's request message is refused with <c>INVALID_ARGUMENT</c>. The
/// generated marshallers let the parser's exception escape, which gRPC answers with
/// <c>UNKNOWN</c> and an error with a stack trace in the log: one per call a hostile client makes.
/// </summary>
/// <remarks>
/// A service opts in with <c>[BindServiceMethod(typeof(StrictRequestBinding.X), "BindService")]</c>,
/// which takes precedence over the generated base class's attribute. The handlers are still the
/// service's overrides of the generated base class's methods (gRPC finds them by name, and
/// checks them against the bind method's parameter type, hence the base class there);
/// <c>Descriptor</c> is what server reflection lists.
/// </remarks>
internal static class StrictRequestBinding
{
    /// <summary><c>realtime.v1.Publisher</c>.</summary>
    public static class Publisher
    {
        public static ServiceDescriptor Descriptor => Contracts.V1.Publisher.Descriptor;

        public static void BindService(ServiceBinderBase binder, Contracts.V1.Publisher.PublisherBase service)
        {
            ArgumentNullException.ThrowIfNull(binder);
            binder.AddMethod(Unary<PublishRequest, PublishResponse>(Descriptor, "Publish", PublishRequest.Parser), (UnaryServerMethod<PublishRequest, PublishResponse>?)null);
            binder.AddMethod(Unary<PublishBatchRequest, PublishBatchResponse>(Descriptor, "PublishBatch", PublishBatchRequest.Parser), (UnaryServerMethod<PublishBatchRequest, PublishBatchResponse>?)null);
            binder.AddMethod(Duplex<PublishRequest, PublishStreamResponse>(Descriptor, "PublishStream", PublishRequest.Parser), (DuplexStreamingServerMethod<PublishRequest, PublishStreamResponse>?)null);
        }
    }

    /// <summary><c>realtime.v1.Channels</c>.</summary>
    public static class Channels
    {
        public static ServiceDescriptor Descriptor => Contracts.V1.Channels.Descriptor;

        public static void BindService(ServiceBinderBase binder, Contracts.V1.Channels.ChannelsBase service)
        {
            ArgumentNullException.ThrowIfNull(binder);
            binder.AddMethod(Unary<HistoryRequest, HistoryResponse>(Descriptor, "History", HistoryRequest.Parser), (UnaryServerMethod<HistoryRequest, HistoryResponse>?)null);
        }
    }

    /// <summary><c>realtime.v1.Sessions</c>.</summary>
    public static class Sessions
    {
        public static ServiceDescriptor Descriptor => Contracts.V1.Sessions.Descriptor;

        public static void BindService(ServiceBinderBase binder, Contracts.V1.Sessions.SessionsBase service)
        {
            ArgumentNullException.ThrowIfNull(binder);
            binder.AddMethod(Unary<RevokeSessionsRequest, RevokeResponse>(Descriptor, "RevokeSessions", RevokeSessionsRequest.Parser), (UnaryServerMethod<RevokeSessionsRequest, RevokeResponse>?)null);
            binder.AddMethod(Unary<RevokeChannelAccessRequest, RevokeResponse>(Descriptor, "RevokeChannelAccess", RevokeChannelAccessRequest.Parser), (UnaryServerMethod<RevokeChannelAccessRequest, RevokeResponse>?)null);
        }
    }

    private static Method<TRequest, TResponse> Unary<TRequest, TResponse>(ServiceDescriptor service, string name, MessageParser<TRequest> parser)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse> =>
        Strict<TRequest, TResponse>(MethodType.Unary, service, name, parser);

    private static Method<TRequest, TResponse> Duplex<TRequest, TResponse>(ServiceDescriptor service, string name, MessageParser<TRequest> parser)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse> =>
        Strict<TRequest, TResponse>(MethodType.DuplexStreaming, service, name, parser);

    private static Method<TRequest, TResponse> Strict<TRequest, TResponse>(MethodType type, ServiceDescriptor service, string name, MessageParser<TRequest> parser)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse> =>
        new(type, service.FullName, name, Marshallers.Create(Serialize, context => Parse(context, parser)), Marshallers.Create<TResponse>(Serialize, _ => throw new NotSupportedException("Responses are only written.")));

    private static void Serialize<T>(T message, SerializationContext context)
        where T : IMessage<T>
    {
        context.SetPayloadLength(message.CalculateSize());
        message.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    private static T Parse<T>(DeserializationContext context, MessageParser<T> parser)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(context.PayloadAsReadOnlySequence());
        }
        catch (InvalidProtocolBufferException)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"The request is not a valid {typeof(T).Name}."));
        }
    }
}
