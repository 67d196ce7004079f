// TensorRT IPluginV3 Correlation plugin; see correlation_plugin.h and docs/plugin.md.
#include "correlation_plugin.h"

#include "correlation_api.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>

using namespace nvinfer1;

namespace edgeflow
{
namespace trt
{
namespace
{

// ---- logging -----------------------------------------------------------------------------------------------

std::mutex gLoggerMutex;
ILoggerFinder* gLoggerFinder{nullptr};

//! Route messages to the logger of the engine/context that called us (setLoggerFinder), else stderr for
//! warnings and errors so a failed build never fails silently.
void log(ILogger::Severity severity, std::string const& message) noexcept
{
    try
    {
        std::string const line = std::string("[edgeflow::Correlation] ") + message;
        ILogger* logger{nullptr};
        {
            std::lock_guard<std::mutex> lock(gLoggerMutex);
            if (gLoggerFinder != nullptr)
            {
                logger = gLoggerFinder->findLogger();
            }
        }
        if (logger != nullptr)
        {
            logger->log(severity, line.c_str());
        }
        else if (severity <= ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "%s\n", line.c_str());
        }
    }
    catch (...)
    {
    }
}

void logError(std::string const& message) noexcept
{
    log(ILogger::Severity::kERROR, message);
}

// ---- plugin fields -------------------------------------------------------------------------------------------

struct FieldSpec
{
    char const* name;
    int32_t CorrelationAttributes::*member;
};

// Order = ONNX attribute order = serialization order.
constexpr FieldSpec kFIELDS[] = {
    {"max_displacement", &CorrelationAttributes::maxDisplacement},
    {"kernel_size", &CorrelationAttributes::kernelSize},
    {"stride1", &CorrelationAttributes::stride1},
    {"stride2", &CorrelationAttributes::stride2},
    {"pad_size", &CorrelationAttributes::padSize},
    {"normalize", &CorrelationAttributes::normalize},
};
constexpr int32_t kNB_FIELDS = int32_t(sizeof(kFIELDS) / sizeof(kFIELDS[0]));

//! First element of an integer-valued field of any numeric PluginFieldType.
bool readInt(PluginField const& field, int64_t& value) noexcept
{
    if (field.data == nullptr || field.length < 1)
    {
        return false;
    }
    switch (field.type)
    {
    case PluginFieldType::kINT32: value = *static_cast<int32_t const*>(field.data); return true;
    case PluginFieldType::kINT64: value = *static_cast<int64_t const*>(field.data); return true;
    case PluginFieldType::kINT16: value = *static_cast<int16_t const*>(field.data); return true;
    case PluginFieldType::kINT8: value = *static_cast<int8_t const*>(field.data); return true;
    case PluginFieldType::kFLOAT32: value = int64_t(*static_cast<float const*>(field.data)); return true;
    case PluginFieldType::kFLOAT64: value = int64_t(*static_cast<double const*>(field.data)); return true;
    default: return false;
    }
}

std::string describe(CorrelationAttributes const& a)
{
    std::ostringstream s;
    s << "max_displacement=" << a.maxDisplacement << ",kernel_size=" << a.kernelSize << ",stride1=" << a.stride1
      << ",stride2=" << a.stride2 << ",pad_size=" << a.padSize << ",normalize=" << a.normalize;
    return s.str();
}

bool isSupportedType(DataType t) noexcept
{
    return t == DataType::kFLOAT || t == DataType::kHALF;
}

//! Shape/type checks shared by configurePlugin (dims may hold -1) and onShapeChange/enqueue.
std::string checkInputs(PluginTensorDesc const& a, PluginTensorDesc const& b) noexcept
{
    if (a.dims.nbDims != 4 || b.dims.nbDims != 4)
    {
        return "inputs must be 4-D (batch, channels, height, width)";
    }
    for (int32_t i = 0; i < 4; ++i)
    {
        if (a.dims.d[i] >= 0 && b.dims.d[i] >= 0 && a.dims.d[i] != b.dims.d[i])
        {
            return "the two inputs must have the same shape";
        }
    }
    if (a.type != b.type || !isSupportedType(a.type))
    {
        return "inputs must both be float32 or both float16";
    }
    return "";
}

} // namespace

std::string validateAttributes(CorrelationAttributes const& a) noexcept
{
    if (a.maxDisplacement < 0)
        return "max_displacement must be >= 0";
    if (a.kernelSize < 1 || a.kernelSize % 2 == 0)
        return "kernel_size must be odd and >= 1";
    if (a.stride1 < 1 || a.stride2 < 1)
        return "stride1 and stride2 must be >= 1";
    if (a.padSize < 0)
        return "pad_size must be >= 0";
    return "";
}

std::string parseAttributes(PluginFieldCollection const* fc, CorrelationAttributes& attrs) noexcept
{
    try
    {
        attrs = CorrelationAttributes{};
        bool haveDisplacement = false;
        bool havePad = false;
        if (fc != nullptr && fc->nbFields > 0 && fc->fields == nullptr)
        {
            return "field collection has no fields array";
        }
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            PluginField const& field = fc->fields[i];
            if (field.name == nullptr)
            {
                continue;
            }
            for (FieldSpec const& spec : kFIELDS)
            {
                if (std::strcmp(field.name, spec.name) != 0)
                {
                    continue;
                }
                int64_t value = 0;
                if (!readInt(field, value) || value < INT32_MIN || value > INT32_MAX)
                {
                    return std::string("field '") + spec.name + "' must be one integer";
                }
                attrs.*(spec.member) = int32_t(value);
                haveDisplacement |= spec.member == &CorrelationAttributes::maxDisplacement;
                havePad |= spec.member == &CorrelationAttributes::padSize;
            }
        }
        if (!haveDisplacement)
        {
            return "missing required field 'max_displacement'";
        }
        if (!havePad)
        {
            attrs.padSize = attrs.maxDisplacement; // the op's default
        }
        attrs.normalize = attrs.normalize != 0 ? 1 : 0;
        return validateAttributes(attrs);
    }
    catch (std::exception const& e)
    {
        return e.what();
    }
}

// ---- CorrelationPlugin -----------------------------------------------------------------------------------------

CorrelationPlugin::CorrelationPlugin(CorrelationAttributes const& attrs)
    : mAttrs(attrs)
{
    initFields();
}

CorrelationPlugin::CorrelationPlugin(CorrelationPlugin const& other)
    : IPluginV3()
    , IPluginV3OneCore()
    , IPluginV3OneBuild()
    , IPluginV3OneRuntime()
    , mAttrs(other.mAttrs)
{
    initFields(); // the fields point into *this* object's attributes
}

void CorrelationPlugin::initFields()
{
    mDescription = describe(mAttrs);
    mFields.clear();
    for (FieldSpec const& spec : kFIELDS)
    {
        mFields.emplace_back(spec.name, &(mAttrs.*(spec.member)), PluginFieldType::kINT32, 1);
    }
    mFieldCollection.nbFields = int32_t(mFields.size());
    mFieldCollection.fields = mFields.data();
}

IPluginCapability* CorrelationPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* CorrelationPlugin::clone() noexcept
{
    try
    {
        return new CorrelationPlugin(*this);
    }
    catch (std::exception const& e)
    {
        logError(std::string("clone failed: ") + e.what());
    }
    return nullptr;
}

char const* CorrelationPlugin::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* CorrelationPlugin::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* CorrelationPlugin::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

int32_t CorrelationPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != 2 || nbOutputs != 1)
    {
        logError("expects 2 inputs and 1 output");
        return -1;
    }
    std::string const error = checkInputs(in[0].desc, in[1].desc);
    if (!error.empty())
    {
        logError(error);
        return -1;
    }
    return 0;
}

int32_t CorrelationPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != 1 || nbInputs != 2)
    {
        return -1;
    }
    outputTypes[0] = inputTypes[0]; // fp32 -> fp32, fp16 -> fp16 (fp32 accumulation inside)
    return 0;
}

int32_t CorrelationPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    if (inputs == nullptr || outputs == nullptr || nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 4
        || inputs[1].nbDims != 4)
    {
        logError("expects two 4-D inputs (batch, channels, height, width) and one output");
        return -1;
    }
    int32_t const kr = (mAttrs.kernelSize - 1) / 2;
    int32_t const border = mAttrs.maxDisplacement + kr;
    int32_t const gridWidth = 2 * (mAttrs.maxDisplacement / mAttrs.stride2) + 1;
    // H' = ceil((H + 2 pad - 2 border) / stride1), W' likewise.
    IDimensionExpr const* shift = exprBuilder.constant(int64_t(2) * mAttrs.padSize - int64_t(2) * border);
    IDimensionExpr const* stride = exprBuilder.constant(mAttrs.stride1);
    DimsExprs& o = outputs[0];
    o.nbDims = 4;
    o.d[0] = inputs[0].d[0];
    o.d[1] = exprBuilder.constant(int64_t(gridWidth) * gridWidth);
    for (int32_t axis = 2; axis < 4; ++axis)
    {
        IDimensionExpr const* span = exprBuilder.operation(DimensionOperation::kSUM, *inputs[0].d[axis], *shift);
        o.d[axis] = mAttrs.stride1 == 1 ? span : exprBuilder.operation(DimensionOperation::kCEIL_DIV, *span, *stride);
    }
    return 0;
}

bool CorrelationPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == 0)
    {
        return isSupportedType(desc.type);
    }
    return desc.type == inOut[0].desc.type; // both inputs and the output share one type
}

int32_t CorrelationPlugin::getNbOutputs() const noexcept
{
    return 1;
}

size_t CorrelationPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

char const* CorrelationPlugin::getTimingCacheID() noexcept
{
    return mDescription.c_str();
}

char const* CorrelationPlugin::getMetadataString() noexcept
{
    return mDescription.c_str();
}

int32_t CorrelationPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != 2 || nbOutputs != 1)
    {
        logError("expects 2 inputs and 1 output");
        return -1;
    }
    std::string const error = checkInputs(in[0], in[1]);
    if (!error.empty())
    {
        logError(error);
        return -1;
    }
    return 0;
}

int32_t CorrelationPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        return -1;
    }
    Dims const& d = inputDesc[0].dims;
    if (d.nbDims != 4)
    {
        return -1;
    }
    int const dtype = inputDesc[0].type == DataType::kHALF ? EDGEFLOW_DTYPE_FLOAT16 : EDGEFLOW_DTYPE_FLOAT32;
    int const status = edgeflow_correlation_forward(inputs[0], inputs[1], outputs[0], dtype, int(d.d[0]),
        int(d.d[1]), int(d.d[2]), int(d.d[3]), mAttrs.maxDisplacement, mAttrs.kernelSize, mAttrs.stride1,
        mAttrs.stride2, mAttrs.padSize, mAttrs.normalize, EDGEFLOW_CORR_AUTO, stream);
    if (status != 0)
    {
        std::string message = std::string("enqueue failed: ") + edgeflow_correlation_status_string(status);
        if (*edgeflow_correlation_last_cuda_error() != '\0')
        {
            message += std::string(" (") + edgeflow_correlation_last_cuda_error() + ")";
        }
        logError(message);
        return status;
    }
    return 0;
}

IPluginV3* CorrelationPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone(); // no per-context resources
}

PluginFieldCollection const* CorrelationPlugin::getFieldsToSerialize() noexcept
{
    return &mFieldCollection;
}

// ---- CorrelationPluginCreator --------------------------------------------------------------------------------

CorrelationPluginCreator::CorrelationPluginCreator()
{
    for (FieldSpec const& spec : kFIELDS)
    {
        mFieldNames.emplace_back(spec.name, nullptr, PluginFieldType::kINT32, 1);
    }
    mFieldCollection.nbFields = int32_t(mFieldNames.size());
    mFieldCollection.fields = mFieldNames.data();
}

IPluginV3* CorrelationPluginCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        // Build phase: fields are the ONNX attributes; runtime phase: what getFieldsToSerialize() wrote.
        CorrelationAttributes attrs;
        std::string const error = parseAttributes(fc, attrs);
        if (!error.empty())
        {
            logError(std::string("cannot create '") + (name ? name : "") + "': " + error);
            return nullptr;
        }
        return new CorrelationPlugin(attrs);
    }
    catch (std::exception const& e)
    {
        logError(std::string("createPlugin failed: ") + e.what());
    }
    return nullptr;
}

PluginFieldCollection const* CorrelationPluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

char const* CorrelationPluginCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* CorrelationPluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* CorrelationPluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

// ---- registration -------------------------------------------------------------------------------------------

namespace
{

CorrelationPluginCreator& sharedCreator()
{
    static CorrelationPluginCreator creator;
    return creator;
}

//! Load-time registration, as REGISTER_TENSORRT_PLUGIN does, but under the creator's own namespace:
//! the stock macro passes "" as the namespace, while the ONNX parser looks the creator up as
//! ("Correlation", "1", "edgeflow"). TensorRT's own tensorrt.plugin registers the same way.
//! EDGEFLOW_PLUGIN_NO_STATIC_REGISTRATION=1 turns it off (then only getCreators() registers).
class StaticRegistration
{
public:
    StaticRegistration()
    {
        char const* off = std::getenv("EDGEFLOW_PLUGIN_NO_STATIC_REGISTRATION");
        if (off != nullptr && off[0] != '\0' && off[0] != '0')
        {
            return;
        }
        IPluginRegistry* registry = getPluginRegistry();
        mRegistered = registry != nullptr && registry->registerCreator(sharedCreator(), kPLUGIN_NAMESPACE);
    }

    //! loadLibrary() refuses a library whose creators are already registered, so hand the creator over:
    //! undo our load-time registration before the registry registers it again from getCreators().
    void release() noexcept
    {
        if (mRegistered)
        {
            IPluginRegistry* registry = getPluginRegistry();
            if (registry != nullptr)
            {
                registry->deregisterCreator(sharedCreator());
            }
            mRegistered = false;
        }
    }

private:
    bool mRegistered{false};
};

StaticRegistration& staticRegistration()
{
    static StaticRegistration registration;
    return registration;
}

// Runs when the library is loaded (dlopen / ctypes.CDLL / trtexec --staticPlugins).
struct LoadTimeHook
{
    LoadTimeHook()
    {
        staticRegistration();
    }
} const gLoadTimeHook;

} // namespace

} // namespace trt
} // namespace edgeflow

extern "C" EDGEFLOW_EXPORT int edgeflow_plugin_tensorrt_version(void)
{
    // TensorRT 11 defines NV_TENSORRT_MAJOR through TRT_MAJOR_ENTERPRISE; both expand to integers.
    return NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
}

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    std::lock_guard<std::mutex> lock(edgeflow::trt::gLoggerMutex);
    if (finder != nullptr)
    {
        edgeflow::trt::gLoggerFinder = finder;
    }
}

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    edgeflow::trt::staticRegistration().release();
    static nvinfer1::IPluginCreatorInterface* const kCREATORS[] = {&edgeflow::trt::sharedCreator()};
    nbCreators = 1;
    return kCREATORS;
}
